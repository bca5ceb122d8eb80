package mp4

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"roomrec/recording/flv"
)

// ErrCodecChange is returned by FileWriter.WriteTag for a sequence header
// that differs from the one the file's init was written with (or for audio
// whose header comes after the init): an MP4 file holds one configuration
// per track, and package flv's Repairer starts a new file on a change
// before this can happen.
var ErrCodecChange = errors.New("codec configuration changed within an mp4 file")

// ErrUnsupported is returned by FileWriter.WriteTag for a tag of a codec
// the writer cannot put in MP4: video other than H.264 and H.265, audio
// other than AAC.
var ErrUnsupported = errors.New("codec not supported in mp4")

// maxFragment bounds the media time of a fragment, in ms, when keyframes
// are further apart: a crash loses at most the fragment being buffered.
const maxFragment = 2000

// maxFragmentBytes bounds the memory a fragment may take, whatever its
// duration.
const maxFragmentBytes = 64 << 20

// Sample flags (ISO/IEC 14496-12 8.8.3.1) for keyframes, which depend on
// no other sample, and for the rest.
const (
	flagsKeyframe = 0x02000000
	flagsInter    = 0x01010000
)

// FileWriter writes one fragmented MP4 file from FLV tags: the init (ftyp
// and moov) once the codec configuration is known, then one moof and mdat
// per GOP, cut at each video keyframe and at about 2 s without one. It has
// the shape of flv.FileWriter, so package recording can drive either.
//
// A fragment is collected in memory and written whole in one Write, so a
// crash loses at most the fragment being collected, and after a failed
// write (a full disk) Complete says where the last whole fragment on disk
// ends. Finish rewrites the durations in the init through the io.WriterAt;
// without one they stay 0, and players take the duration from the
// fragments. Buffers are reused, so a steady stream allocates nothing.
type FileWriter struct {
	w  io.Writer
	at io.WriterAt

	video, audio writerTrack
	init         []byte // the init as written, rewritten at Finish
	layout       initLayout
	started      bool // init written (or tried)
	seq          uint32
	fragStart    int64 // DTS of the fragment's first sample, ms
	out          []byte

	flushed, complete int64
	completeEnd       int64 // media end of the fragments on disk, ms
	err               error
	keyframes         int
}

// writerTrack is what FileWriter keeps per track.
type writerTrack struct {
	codec   byte
	config  []byte // avcC, hvcC or AudioSpecificConfig; owned
	inInit  bool
	pending []pendingSample
	data    []byte // the pending samples' bytes, in order
	last    int64  // DTS of the newest sample, ms
	any     bool
	dur     int64 // the newest known sample duration, ms, for the last sample
	end     int64 // media end of the newest sample: last + dur
}

type pendingSample struct {
	dts  int64
	dur  int64 // -1 until the next sample of the track arrives
	cts  int32
	key  bool
	size int
}

// NewFileWriter returns a FileWriter writing to w, with at (usually the same
// *os.File) used to rewrite the durations at Finish; at may be nil.
func NewFileWriter(w io.Writer, at io.WriterAt) *FileWriter {
	return &FileWriter{w: w, at: at,
		video: writerTrack{dur: 33}, audio: writerTrack{dur: 21},
		out: make([]byte, 0, 256<<10)}
}

// WriteHeader starts the file. It writes nothing: the init needs the codec
// configuration, so it is written with the first media frame, once the
// video sequence header (and the audio one, if it comes before that frame)
// has been seen. It exists so FileWriter has flv.FileWriter's shape.
func (f *FileWriter) WriteHeader() error { return f.err }

// WriteTag takes the next tag of the file: sequence headers set the
// tracks' configuration, frames become samples, script tags and
// end-of-sequence markers are dropped, and so are empty frames. A frame
// before its track's sequence header is an error, and so are a frame whose
// timestamp is before the previous one of its track (the Repairer never
// sends either) and a sequence header too short to be a decoder
// configuration record. It returns
// ErrCodecChange or ErrUnsupported as their docs say; after a failed write
// every call returns the same error.
func (f *FileWriter) WriteTag(t *flv.Tag) error {
	if f.err != nil {
		return f.err
	}
	d := t.Data
	switch t.Type {
	case flv.TagVideo:
		if len(d) < 5 {
			return nil // nothing a decoder could use
		}
		codec := d[0] & 0x0f
		if codec != codecAVC && codec != codecHEVC {
			return fmt.Errorf("write mp4: video codec %d: %w", codec, ErrUnsupported)
		}
		switch d[1] {
		case 0:
			return f.setConfig(&f.video, codec, d[5:])
		case 1:
			if f.video.config == nil {
				return errors.New("write mp4: video frame before its sequence header")
			}
			if codec != f.video.codec {
				return fmt.Errorf("write mp4: video frame of codec %d in a file of codec %d: %w", codec, f.video.codec, ErrCodecChange)
			}
			cts := int32(uint32(d[2])<<16|uint32(d[3])<<8|uint32(d[4])) << 8 >> 8
			return f.sample(&f.video, t.Timestamp, cts, d[0]>>4 == 1, d[5:])
		}
	case flv.TagAudio:
		if len(d) < 2 {
			return nil
		}
		if d[0]>>4 != codecAAC {
			return fmt.Errorf("write mp4: audio format %d: %w", d[0]>>4, ErrUnsupported)
		}
		switch d[1] {
		case 0:
			return f.setConfig(&f.audio, codecAAC, d[2:])
		case 1:
			if f.audio.config == nil {
				return errors.New("write mp4: audio frame before its AudioSpecificConfig")
			}
			return f.sample(&f.audio, t.Timestamp, 0, true, d[2:])
		}
	}
	return nil
}

// setConfig takes a sequence header. Before the init is written the newest
// one counts; after it, only a repeat of the one written is accepted.
func (f *FileWriter) setConfig(tr *writerTrack, codec byte, config []byte) error {
	// A record the Demuxer (and so ScanComplete) would refuse makes a file
	// nothing can read back.
	if codec == codecAAC && len(config) < 2 {
		return fmt.Errorf("write mp4: AudioSpecificConfig of %d bytes", len(config))
	}
	if err := checkVideoConfig(codec, config); err != nil {
		return fmt.Errorf("write mp4: %w", err)
	}
	if !f.started {
		tr.codec, tr.config = codec, append(tr.config[:0], config...)
		return nil
	}
	if tr.inInit && tr.codec == codec && bytes.Equal(tr.config, config) {
		return nil
	}
	return fmt.Errorf("write mp4: new %s sequence header after the file started: %w", trackName(tr == &f.audio), ErrCodecChange)
}

func trackName(audio bool) string {
	if audio {
		return "audio"
	}
	return "video"
}

// sample adds a frame to the fragment, first writing the fragment so far
// if the frame starts a new one.
func (f *FileWriter) sample(tr *writerTrack, dts int64, cts int32, key bool, payload []byte) error {
	if len(payload) == 0 {
		return nil // nothing to decode; readers skip empty samples anyway
	}
	if !f.started {
		if err := f.writeInit(); err != nil {
			return err
		}
	}
	if !tr.inInit {
		return fmt.Errorf("write mp4: audio started after the file's init: %w", ErrCodecChange)
	}
	if dts < 0 || dts > math.MaxUint32 {
		return fmt.Errorf("write mp4: %s timestamp %d ms out of range", trackName(tr == &f.audio), dts)
	}
	if tr.any && dts < tr.last {
		return fmt.Errorf("write mp4: %s timestamp goes back from %d to %d ms", trackName(tr == &f.audio), tr.last, dts)
	}
	if tr.any {
		tr.dur = dts - tr.last
		if n := len(tr.pending); n > 0 {
			tr.pending[n-1].dur = tr.dur
		}
	}
	tr.last, tr.any, tr.end = dts, true, dts+tr.dur

	if len(f.video.pending)+len(f.audio.pending) > 0 {
		video := tr == &f.video
		if video && key || dts-f.fragStart >= maxFragment || len(f.video.data)+len(f.audio.data) >= maxFragmentBytes {
			if err := f.flush(false); err != nil {
				return err
			}
		}
	}
	if len(f.video.pending)+len(f.audio.pending) == 0 {
		f.fragStart = dts
	}
	if key && tr == &f.video {
		f.keyframes++
	}
	tr.pending = append(tr.pending, pendingSample{dts: dts, dur: -1, cts: cts, key: key, size: len(payload)})
	tr.data = append(tr.data, payload...)
	return nil
}

// Flush writes nothing: a fragment is whole only once the next keyframe
// (or Finish) ends it, because its last samples' durations come from the
// samples after them. It exists so FileWriter has flv.FileWriter's shape;
// after a failed write it returns that error.
func (f *FileWriter) Flush() error { return f.err }

// writeInit writes ftyp and moov for the configuration seen so far.
func (f *FileWriter) writeInit() error {
	f.started = true
	if f.video.config == nil {
		f.err = errors.New("write mp4: no video sequence header before the first frame")
		return f.err
	}
	f.video.inInit, f.audio.inInit = true, f.audio.config != nil
	f.init, f.layout = appendInit(nil, f.video.codec, f.video.config, f.audio.config)
	return f.write(f.init, 0)
}

// write writes b, which ends with whole boxes reaching media time end.
func (f *FileWriter) write(b []byte, end int64) error {
	n, err := f.w.Write(b)
	f.flushed += int64(n)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		f.err = fmt.Errorf("write mp4: %w", err)
		return f.err
	}
	f.complete, f.completeEnd = f.flushed, max(f.completeEnd, end)
	return nil
}

// ready is how many of a track's pending samples can go into the fragment
// being written: those whose duration is known, or all at the end.
func (tr *writerTrack) ready(final bool) int {
	n := len(tr.pending)
	if n > 0 && !final && tr.pending[n-1].dur < 0 {
		n--
	}
	return n
}

// flush writes the pending samples as one fragment. The last sample of a
// track whose next sample has not come yet stays for the next fragment,
// unless final, when it gets the duration of the one before it.
func (f *FileWriter) flush(final bool) error {
	if final {
		for _, tr := range []*writerTrack{&f.video, &f.audio} {
			if n := len(tr.pending); n > 0 && tr.pending[n-1].dur < 0 {
				tr.pending[n-1].dur = tr.dur
			}
		}
	}
	nv, na := f.video.ready(final), f.audio.ready(final)
	if nv+na == 0 {
		return nil
	}
	f.seq++
	b := f.out[:0]
	b, moof := startBox(b, typeMoof)
	b, mfhd := startFullBox(b, typeMfhd, 0, 0)
	b = appendU32(b, f.seq)
	b = endBox(b, mfhd)
	var offsets [2]int // where each trun's data offset goes
	var end int64
	for i, tr := range []*writerTrack{&f.video, &f.audio} {
		n := nv
		if i == 1 {
			n = na
		}
		if n == 0 {
			continue
		}
		s := tr.pending[:n]
		var traf, tfhd, tfdt, trun int
		b, traf = startBox(b, typeTraf)
		b, tfhd = startFullBox(b, typeTfhd, 0, tfhdDefaultBaseMoof)
		b = appendU32(b, uint32(videoTrackID+i))
		b = endBox(b, tfhd)
		b, tfdt = startFullBox(b, typeTfdt, 1, 0)
		b = appendU64(b, uint64(s[0].dts))
		b = endBox(b, tfdt)
		flags := uint32(trunDataOffset | trunDuration | trunSize)
		if i == 0 {
			flags |= trunFlags | trunCTO
		}
		b, trun = startFullBox(b, typeTrun, 1, flags)
		b = appendU32(b, uint32(n))
		offsets[i] = len(b)
		b = appendU32(b, 0)
		for _, p := range s {
			b = appendU32(b, uint32(p.dur))
			b = appendU32(b, uint32(p.size))
			if i == 0 {
				sf := uint32(flagsInter)
				if p.key {
					sf = flagsKeyframe
				}
				b = appendU32(b, sf)
				b = appendU32(b, uint32(p.cts))
			}
		}
		b = endBox(b, trun)
		b = endBox(b, traf)
		end = max(end, s[n-1].dts+s[n-1].dur)
	}
	b = endBox(b, moof)
	// moof's data offsets count from its first byte, which is b[0].
	b, mdat := startBox(b, typeMdat)
	for i, tr := range []*writerTrack{&f.video, &f.audio} {
		n := nv
		if i == 1 {
			n = na
		}
		if n == 0 {
			continue
		}
		binary.BigEndian.PutUint32(b[offsets[i]:], uint32(len(b)))
		size := 0
		for _, p := range tr.pending[:n] {
			size += p.size
		}
		b = append(b, tr.data[:size]...)
		// Keep what stays for the next fragment.
		tr.data = tr.data[:copy(tr.data, tr.data[size:])]
		tr.pending = tr.pending[:copy(tr.pending, tr.pending[n:])]
	}
	b = endBox(b, mdat)
	f.out = b
	if len(f.video.pending) > 0 || len(f.audio.pending) > 0 {
		f.fragStart = math.MaxInt64
		for _, tr := range []*writerTrack{&f.video, &f.audio} {
			if len(tr.pending) > 0 {
				f.fragStart = min(f.fragStart, tr.pending[0].dts)
			}
		}
	}
	return f.write(b, end)
}

// Written returns the size of the file as written so far, with the
// fragment being collected counted as if written now.
func (f *FileWriter) Written() int64 {
	n := f.flushed
	if nv, na := len(f.video.pending), len(f.audio.pending); nv+na > 0 {
		n += 8 + 16 + 8 + int64(len(f.video.data)+len(f.audio.data))
		for _, c := range [2]int64{int64(nv) * 16, int64(na) * 8} {
			if c > 0 {
				n += 8 + 16 + 20 + 20 + c
			}
		}
	}
	return n
}

// Complete returns the size of the file on disk up to the end of its last
// whole fragment (or its init, before the first fragment). After a failed
// write the file should be cut to this size, so that it ends cleanly.
func (f *FileWriter) Complete() int64 { return f.complete }

// Duration returns the media duration written so far: the end of the
// newest sample of either track, the last one lasting as long as the one
// before it.
func (f *FileWriter) Duration() time.Duration {
	return time.Duration(max(f.video.endTime(), f.audio.endTime())) * time.Millisecond
}

func (tr *writerTrack) endTime() int64 {
	if !tr.any {
		return 0
	}
	return tr.end
}

// Finish writes the fragment being collected, rewrites the init's
// durations, and returns what the file holds. After a write error only
// what reached the file counts, and the durations are still rewritten if
// the init reached it, so the part written plays with the right length. A
// file that got sequence headers but no frame is written as its init
// alone. It closes nothing.
func (f *FileWriter) Finish() (flv.FileStats, error) {
	err := f.err
	if err == nil && !f.started && f.video.config != nil {
		err = f.writeInit()
	}
	if err == nil {
		err = f.flush(true)
	}
	st := flv.FileStats{
		Size: f.complete, Duration: time.Duration(f.completeEnd) * time.Millisecond,
		Keyframes: f.keyframes, HasVideo: f.video.any, HasAudio: f.audio.any,
	}
	if f.at == nil || f.init == nil || f.complete < int64(len(f.init)) {
		return st, err
	}
	d := uint32(min(f.completeEnd, math.MaxUint32))
	binary.BigEndian.PutUint32(f.init[f.layout.mvhdDuration:], d)
	binary.BigEndian.PutUint32(f.init[f.layout.mehdDuration:], d)
	if _, werr := f.at.WriteAt(f.init, 0); werr != nil && err == nil {
		err = fmt.Errorf("rewrite mp4 durations: %w", werr)
	}
	return st, err
}
