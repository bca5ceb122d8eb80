package flv

import (
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

// FileWriter writes one FLV file: the header, an onMetaData placeholder of
// fixed size, and the tags it is given; Finish overwrites the placeholder
// with the duration, file size and keyframe index through an io.WriterAt,
// so a file is never rewritten whole. Without a WriterAt the placeholder
// stays (with zero duration), which players accept.
type FileWriter struct {
	w        *Writer
	at       io.WriterAt
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
}

// NewFileWriter returns a FileWriter writing to w, with at (usually the same
// *os.File) used to rewrite the metadata at Finish; at may be nil.
func NewFileWriter(w io.Writer, at io.WriterAt) *FileWriter {
	return &FileWriter{w: NewWriter(w), at: at, stride: 1, lastVid: -1, interval: 33,
		keyTimes: make([]any, 0, KeyframeCapacity), keyPos: make([]any, 0, KeyframeCapacity)}
}

// WriteHeader writes the FLV header (audio and video) and the metadata
// placeholder. It must be called once, first.
func (f *FileWriter) WriteHeader() error {
	if err := f.w.WriteHeader(FlagAudio | FlagVideo); err != nil {
		return err
	}
	placeholder, err := f.metadata(0, 0, KeyframeCapacity)
	if err != nil {
		return err
	}
	f.metaAt = f.w.Written() + TagHeaderLen
	f.metaLen = len(placeholder)
	return f.w.WriteTag(&Tag{Type: TagScript, Data: placeholder})
}

// WriteTag writes a tag and notes keyframes for the index.
func (f *FileWriter) WriteTag(t *Tag) error {
	pos := f.w.Written()
	if err := f.w.WriteTag(t); err != nil {
		return err
	}
	switch t.Type {
	case TagAudio:
		f.hasAudio = true
	case TagVideo:
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

// Written returns the bytes written so far.
func (f *FileWriter) Written() int64 { return f.w.Written() }

// Duration returns the media duration written so far.
func (f *FileWriter) Duration() time.Duration {
	if !f.any {
		return 0
	}
	return time.Duration(f.lastTS+f.interval) * time.Millisecond
}

// Finish rewrites the metadata placeholder with the final values and
// returns what the file holds. It does not close anything.
func (f *FileWriter) Finish() (FileStats, error) {
	st := FileStats{Size: f.w.Written(), Duration: f.Duration(), Keyframes: f.seen, HasAudio: f.hasAudio, HasVideo: f.hasVideo}
	if f.at == nil || f.metaLen == 0 {
		return st, nil
	}
	meta, err := f.metadata(st.Duration.Seconds(), st.Size, len(f.keyTimes))
	if err != nil {
		return st, err
	}
	if _, err := f.at.WriteAt(meta, f.metaAt); err != nil {
		return st, fmt.Errorf("rewrite flv metadata: %w", err)
	}
	return st, nil
}

// metadata encodes onMetaData with room for capacity keyframes, padded to
// exactly the placeholder's length once that is known.
func (f *FileWriter) metadata(duration float64, size int64, capacity int) ([]byte, error) {
	times, pos := f.keyTimes, f.keyPos
	if capacity > len(times) {
		// The placeholder reserves the full index.
		times = make([]any, capacity)
		pos = make([]any, capacity)
		for i := range times {
			times[i], pos[i] = 0.0, 0.0
		}
	}
	props := []Property{
		{"duration", duration},
		{"filesize", float64(size)},
		{"videocodecid", 7.0},
		{"audiocodecid", 10.0},
		{"hasVideo", true},
		{"hasAudio", true},
		{"hasKeyframes", len(f.keyTimes) > 0},
		{"canSeekToEnd", false},
		{"metadatacreator", "roomrec"},
		{"keyframes", []Property{{"times", times}, {"filepositions", pos}}},
	}
	data, err := AppendAMF(appendScriptName(nil, "onMetaData"), props)
	if err != nil {
		return nil, err
	}
	if f.metaLen == 0 {
		return data, nil
	}
	// Pad to the placeholder's length with a string property just before
	// the end marker, so the tag's size and every offset after it hold.
	gap := f.metaLen - len(data)
	const overhead = 2 + len("padding") + 1 + 2 // key length, key, marker, string length
	if gap < overhead {
		return nil, fmt.Errorf("flv metadata of %d bytes does not fit its %d-byte placeholder", len(data), f.metaLen)
	}
	data = data[:len(data)-3]
	data = appendKey(data, "padding")
	data = append(data, amfString)
	data = appendKey(data, string(make([]byte, gap-overhead)))
	return append(data, 0, 0, amfObjectEnd), nil
}

func appendScriptName(dst []byte, name string) []byte {
	dst = append(dst, amfString)
	return appendKey(dst, name)
}
