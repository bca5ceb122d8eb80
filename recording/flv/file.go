package flv

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// KeyframeCapacity is how many keyframes the onMetaData written at the
// start of a file has room for. The index is rewritten in place at Finish,
// so its size is fixed up front; a file with more keyframes keeps every
// second one, then every fourth, and so on, so the index always spans the
// whole file, just more coarsely. 2048 entries are 34 minutes at Bilibili's
// usual one keyframe a second, about 37 KiB of header.
const KeyframeCapacity = 2048

// FileStats describes a finished file.
type FileStats struct {
	Size      int64
	Duration  time.Duration // media duration: last timestamp plus one frame
	Keyframes int
	HasAudio  bool
	HasVideo  bool
}

// fileBuffer is how much a FileWriter collects before writing: large
// enough that a busy stream costs few system calls, small enough that the
// kernel copies it out of the CPU's cache. 1 MiB was no cheaper on tmpfs
// and slower on ext4 (flv ratio to curl 0.93 and 1.01 against 1.12 and
// 1.17 with 128 KiB, alternating runs).
const fileBuffer = 128 << 10

// flushEvery bounds, in media time, how long written tags may wait in the
// buffer, so a crash loses at most about this much of a slow stream.
const flushEvery = 1000 // ms

// FileWriter writes one FLV file: the header, an onMetaData placeholder of
// fixed size, and the tags it is given; Finish overwrites the placeholder
// with the duration, file size and keyframe index through an io.WriterAt,
// so a file is never rewritten whole. Without a WriterAt the placeholder
// stays (with zero duration), which players accept.
//
// Tags are collected in a buffer and written in large chunks. The writer
// knows where each tag ends, so after a failed write (a full disk) Complete
// says where the last whole tag on disk ends.
type FileWriter struct {
	w          io.Writer
	at         io.WriterAt
	buf        []byte
	ends       []tagEnd // each tag in buf
	flushed    int64    // bytes written to w
	complete   int64    // end of the last whole tag written to w
	completeTS int64    // timestamp of that tag
	flushedTS  int64    // timestamp of the last tag when buf was last written
	err        error    // the first write error; the writer is dead after it

	metaAt   int64 // offset of the onMetaData tag's data
	metaLen  int
	stride   int // keep every stride-th keyframe
	seen     int // keyframes seen
	keyTimes []any
	keyPos   []any
	lastTS   int64
	interval int64 // last video frame duration, for the duration's final frame
	lastVid  int64
	hasAudio bool
	hasVideo bool
	any      bool
	// videoCodec is the first video tag's codec id, for onMetaData at
	// Finish (the placeholder says H.264, which a file cut by a crash
	// keeps).
	videoCodec byte
}

// tagEnd is where a buffered tag ends and its timestamp.
type tagEnd struct {
	end int
	ts  int64
}

// NewFileWriter returns a FileWriter writing to w, with at (usually the same
// *os.File) used to rewrite the metadata at Finish; at may be nil.
func NewFileWriter(w io.Writer, at io.WriterAt) *FileWriter {
	return &FileWriter{w: w, at: at, stride: 1, lastVid: -1, interval: 33,
		buf:      make([]byte, 0, fileBuffer+64<<10),
		keyTimes: make([]any, 0, KeyframeCapacity), keyPos: make([]any, 0, KeyframeCapacity)}
}

// WriteHeader writes the FLV header (audio and video) and the metadata
// placeholder, and flushes them. It must be called once, first.
func (f *FileWriter) WriteHeader() error {
	placeholder, err := f.metadata(0, 0, KeyframeCapacity)
	if err != nil {
		return err
	}
	f.buf = AppendHeader(f.buf, FlagAudio|FlagVideo)
	f.metaAt = int64(len(f.buf)) + TagHeaderLen
	f.metaLen = len(placeholder)
	f.buf = AppendTag(f.buf, &Tag{Type: TagScript, Data: placeholder})
	f.ends = append(f.ends, tagEnd{end: len(f.buf)})
	return f.flush()
}

// WriteTag writes a tag and notes keyframes for the index.
func (f *FileWriter) WriteTag(t *Tag) error {
	if f.err != nil {
		return f.err
	}
	if len(t.Data) > MaxTagDataLen {
		return fmt.Errorf("write flv tag: %d bytes of data is over the FLV limit", len(t.Data))
	}
	pos := f.Written()
	f.buf = AppendTag(f.buf, t)
	f.ends = append(f.ends, tagEnd{end: len(f.buf), ts: t.Timestamp})
	switch t.Type {
	case TagAudio:
		f.hasAudio = true
	case TagVideo:
		if !f.hasVideo {
			f.videoCodec = VideoCodec(t.Data)
		}
		f.hasVideo = true
		if f.lastVid >= 0 && t.Timestamp > f.lastVid && t.Timestamp-f.lastVid < 1000 {
			f.interval = t.Timestamp - f.lastVid
		}
		f.lastVid = t.Timestamp
		if t.IsKeyframe() && !t.IsSequenceHeader() {
			f.noteKeyframe(t.Timestamp, pos)
		}
	}
	if t.Type != TagScript && (!f.any || t.Timestamp > f.lastTS) {
		f.lastTS, f.any = t.Timestamp, true
	}
	if len(f.buf) >= fileBuffer || f.lastTS-f.flushedTS >= flushEvery {
		return f.flush()
	}
	return nil
}

// Flush writes what is buffered now. A caller that gets tags in bursts (an
// HLS segment, a second of media, at a time) calls it when a burst has
// ended; otherwise the burst would wait in the buffer for the next one
// before reaching the file. After a failed write it returns that error.
func (f *FileWriter) Flush() error {
	if len(f.buf) == 0 {
		return f.err
	}
	return f.flush()
}

// flush writes the buffer. On a short write it notes how far whole tags
// reached the file.
func (f *FileWriter) flush() error {
	if f.err != nil {
		return f.err
	}
	n, err := f.w.Write(f.buf)
	for _, e := range f.ends {
		if e.end <= n {
			f.complete, f.completeTS = f.flushed+int64(e.end), max(f.completeTS, e.ts)
		}
	}
	f.flushed += int64(n)
	f.flushedTS = f.lastTS
	if err == nil && n < len(f.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		f.err = fmt.Errorf("write flv: %w", err)
		return f.err
	}
	f.buf, f.ends = f.buf[:0], f.ends[:0]
	return nil
}

func (f *FileWriter) noteKeyframe(ts, pos int64) {
	f.seen++
	if (f.seen-1)%f.stride != 0 {
		return
	}
	if len(f.keyTimes) == KeyframeCapacity {
		// Full: keep every other entry and double the stride.
		for i := 0; i < KeyframeCapacity/2; i++ {
			f.keyTimes[i], f.keyPos[i] = f.keyTimes[2*i], f.keyPos[2*i]
		}
		f.keyTimes, f.keyPos = f.keyTimes[:KeyframeCapacity/2], f.keyPos[:KeyframeCapacity/2]
		f.stride *= 2
		if (f.seen-1)%f.stride != 0 {
			return
		}
	}
	f.keyTimes = append(f.keyTimes, float64(ts)/1000)
	f.keyPos = append(f.keyPos, float64(pos))
}

// Written returns the size of the file as written so far, buffered bytes
// included.
func (f *FileWriter) Written() int64 { return f.flushed + int64(len(f.buf)) }

// Complete returns the size of the file on disk up to the end of its last
// whole tag. After a failed write (a full disk) the file should be cut to
// this size, so that it ends cleanly.
func (f *FileWriter) Complete() int64 { return f.complete }

// Duration returns the media duration written so far.
func (f *FileWriter) Duration() time.Duration {
	if !f.any {
		return 0
	}
	return time.Duration(f.lastTS+f.interval) * time.Millisecond
}

// Finish writes what is buffered and rewrites the metadata placeholder with
// the final values, and returns what the file holds. After a write error it
// still rewrites the metadata if the placeholder reached the file, so the
// part that was written plays with the right duration. It closes nothing.
func (f *FileWriter) Finish() (FileStats, error) {
	err := f.flush()
	st := FileStats{Size: f.complete, Duration: f.Duration(), Keyframes: f.seen, HasAudio: f.hasAudio, HasVideo: f.hasVideo}
	if err != nil {
		// Only what reached the file counts.
		st.Duration = time.Duration(f.completeTS+f.interval) * time.Millisecond
	}
	if f.at == nil || f.metaLen == 0 || f.complete < f.metaAt+int64(f.metaLen) {
		return st, err
	}
	meta, merr := f.metadata(st.Duration.Seconds(), st.Size, len(f.keyTimes))
	if merr == nil {
		_, merr = f.at.WriteAt(meta, f.metaAt)
	}
	if merr != nil && err == nil {
		err = fmt.Errorf("rewrite flv metadata: %w", merr)
	}
	return st, err
}

// metadata encodes onMetaData with the keyframe index as it stands, padded
// to exactly the placeholder's length once that is known. The placeholder
// itself is the empty index padded to room for capacity keyframes, so a file
// that is never finished (a crash) carries no bogus index entries.
func (f *FileWriter) metadata(duration float64, size int64, capacity int) ([]byte, error) {
	props := []Property{
		{"duration", duration},
		{"filesize", float64(size)},
		{"videocodecid", float64(cmp.Or(f.videoCodec, CodecAVC))},
		{"audiocodecid", 10.0},
		{"hasVideo", true},
		{"hasAudio", true},
		{"hasKeyframes", len(f.keyTimes) > 0},
		{"canSeekToEnd", false},
		{"metadatacreator", "roomrec"},
		{"keyframes", []Property{{"times", f.keyTimes}, {"filepositions", f.keyPos}}},
	}
	data, err := AppendAMF(appendScriptName(nil, "onMetaData"), props)
	if err != nil {
		return nil, err
	}
	target := f.metaLen
	if target == 0 {
		// Sizing the placeholder: room for every keyframe entry (two
		// numbers of 9 bytes each) and the padding's own overhead.
		target = len(data) + capacity*18 + paddingOverhead + 9
	}
	return pad(data, target)
}

// paddingOverhead is the size of an empty "padding" strict array property.
const paddingOverhead = 2 + len("padding") + 1 + 4

// pad fills encoded metadata up to size bytes with a "padding" property
// holding a strict array of booleans (2 bytes each), plus one number (9
// bytes) when the gap is odd. Players skip it; a long string would do too,
// but FFmpeg rejects strings of 256 bytes or more in metadata.
func pad(data []byte, size int) ([]byte, error) {
	gap := size - len(data) - paddingOverhead
	var numbers, bools int
	switch {
	case gap >= 0 && gap%2 == 0:
		bools = gap / 2
	case gap >= 9:
		numbers, bools = 1, (gap-9)/2
	default:
		return nil, fmt.Errorf("flv metadata of %d bytes does not fit its %d-byte placeholder", len(data), size)
	}
	data = data[:len(data)-3] // reopen the ECMA array before its end marker
	data = appendKey(data, "padding")
	data = append(data, amfStrictArray)
	data = binary.BigEndian.AppendUint32(data, uint32(numbers+bools))
	for range numbers {
		data = appendNumber(data, 0)
	}
	for range bools {
		data = append(data, amfBoolean, 0)
	}
	return append(data, 0, 0, amfObjectEnd), nil
}

func appendScriptName(dst []byte, name string) []byte {
	dst = append(dst, amfString)
	return appendKey(dst, name)
}
