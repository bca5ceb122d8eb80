// Package mpegts turns the MPEG-TS segments of an HLS stream into the FLV
// tags the rest of roomrec works on: AVC or HEVC video tags with an
// AVCDecoderConfigurationRecord or HEVCDecoderConfigurationRecord sequence
// header, and AAC audio tags with an AudioSpecificConfig header, timestamped
// in milliseconds on one timeline across segments.
//
// It reads from an io.Reader and hands tags to a callback; fetching the
// segments belongs to package recording. The TS packets, PES and codec
// bitstreams are parsed with github.com/bluenviron/mediacommon.
package mpegts

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	mcts "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"roomrec/recording/flv"
)

// ErrNoProgram is returned for a segment in which no PMT was found: not
// MPEG-TS at all, or cut before its program table.
var ErrNoProgram = errors.New("no MPEG-TS program in segment")

// ErrNoTracks is returned for a segment whose program has neither H.264,
// H.265 nor AAC.
var ErrNoTracks = errors.New("no H.264, H.265 or AAC stream in segment")

// FLV codec ids of the video tags written.
const (
	codecAVC  = 7
	codecHEVC = 12 // Bilibili's FLV extension; same layout as AVC
)

// jumpThreshold is the largest distance, in ms, between where a segment's
// timestamps start and where the previous segment's end that is taken as
// the stream's own timing. Beyond it (an encoder restart, a stream looping,
// a segment lost) the segment is moved to continue the previous one. It is
// the flv.Repairer's threshold, so that a stream read from HLS is smoothed
// as one read from FLV would be.
const jumpThreshold = 500

// Stats counts what a Demuxer did, for logs.
type Stats struct {
	Segments        int // segments read
	VideoFrames     int // video frame tags emitted
	AudioFrames     int // audio frame tags emitted
	SequenceHeaders int // video and audio sequence header tags emitted
	// NoParameterSets counts video frames dropped because no complete set
	// of parameter sets (SPS and PPS, and VPS for HEVC) had been seen yet.
	NoParameterSets int
	DecodeErrors    int // packets, PES or bitstreams skipped as undecodable
	// AudioSkipped counts segments read without their audio because it
	// could not be opened: a program listing AAC with none in the segment,
	// or a first audio frame that does not decode.
	AudioSkipped int
	Jumps        int // segments moved to continue the previous one
	Clamped      int // tags moved forward so their stream's time never goes back
}

// Demuxer reads the segments of one stream, in order, and keeps what must
// carry from one to the next: the parameter sets and audio configuration
// last seen (a segment may lack them, as long as an earlier one had them)
// and the timeline. It is not safe for concurrent use.
type Demuxer struct {
	codec         int    // codecAVC or codecHEVC: what the parameter sets are for
	vps, sps, pps []byte // the parameter sets last seen, owned copies
	changed       bool   // a parameter set differs from those of the last sequence header
	haveHeader    bool   // a video sequence header was queued
	nalus         [][]byte

	audioConfig      []byte // AudioSpecificConfig of the last audio header queued
	queueAudioHeader bool   // audioConfig changed: the next audio frame needs a header first
	sampleRate       int    // of the segment's audio track

	// Timeline. Raw 33-bit 90 kHz timestamps are unwrapped into ticks,
	// ticks become ms, and ms + offset is what tags carry.
	clockSet   bool
	prevRaw    int64
	ticks      int64
	based      bool
	offset     int64
	lastOut    [2]int64 // per stream (audio, video): the latest emitted
	haveOut    [2]bool
	frame      int64 // the last video frame duration, ms
	audioFrame int64 // the last audio frame duration, ms

	// The segment being read, and its tags, which wait here so they can
	// go out in timestamp order.
	in      bytes.Buffer
	arena   []byte
	pending []pendingTag
	queues  [2][]int // flush's, kept for their memory
	tag     flv.Tag

	stats Stats
}

// pendingTag is a tag of the segment being read; its data is
// arena[start:end].
type pendingTag struct {
	typ        flv.TagType
	ts         int64 // ms, before offset
	start, end int
}

// NewDemuxer returns a Demuxer for a new stream.
func NewDemuxer() *Demuxer {
	return &Demuxer{frame: 33, audioFrame: 21}
}

// Stats returns what the Demuxer has done so far.
func (d *Demuxer) Stats() Stats { return d.stats }

// Segment reads one TS segment, a whole file with its own PAT and PMT, and
// calls emit with its tags: a video sequence header before the first frame
// and whenever the parameter sets change, an audio header before the first
// audio frame and whenever the configuration changes, and one tag per video
// access unit and per AAC frame. Video and audio are merged by timestamp,
// each in the order read; headers that start the segment come first. The
// tag and its data are only valid during the call.
//
// Each segment is read on its own, so continuity counters that start again
// with every segment, as Bilibili's and the simulator's do, are no loss.
// Packets that do not decode are skipped and counted; a segment whose audio
// cannot be opened is read for its video. Segment returns ErrNoProgram or ErrNoTracks for a segment it
// cannot read at all, emit's error as soon as emit fails, and a read error
// of r after emitting the tags of what was read before it.
func (d *Demuxer) Segment(r io.Reader, emit func(*flv.Tag) error) error {
	d.stats.Segments++
	d.arena, d.pending = d.arena[:0], d.pending[:0]
	// The whole segment is read first: opening it may need a second try,
	// and what came before a read error is still worth demuxing.
	d.in.Reset()
	var readErr error
	if _, err := d.in.ReadFrom(r); err != nil {
		readErr = fmt.Errorf("read ts segment: %w", err)
	}
	seg := d.in.Bytes()

	rd := &mcts.Reader{R: bytes.NewReader(seg)}
	if err := rd.Initialize(); err != nil {
		// See hideAudio: try once more with the video alone.
		hidden, ok := hideAudio(seg)
		if !ok {
			return errors.Join(ErrNoProgram, readErr)
		}
		rd = &mcts.Reader{R: bytes.NewReader(hidden)}
		if err2 := rd.Initialize(); err2 != nil {
			return errors.Join(fmt.Errorf("%w: %v", ErrNoProgram, err), readErr)
		}
		d.stats.AudioSkipped++
	}
	rd.OnDecodeError(func(error) { d.stats.DecodeErrors++ })
	var video, audio bool
	for _, tr := range rd.Tracks() {
		switch c := tr.Codec.(type) {
		case *codecs.H264:
			if !video {
				video = true
				rd.OnDataH264(tr, func(pts, dts int64, au [][]byte) error {
					d.video(codecAVC, pts, dts, au)
					return nil
				})
			}
		case *codecs.H265:
			if !video {
				video = true
				rd.OnDataH265(tr, func(pts, dts int64, au [][]byte) error {
					d.video(codecHEVC, pts, dts, au)
					return nil
				})
			}
		case *codecs.MPEG4Audio:
			if !audio && d.audioSetup(c) {
				audio = true
				rd.OnDataMPEG4Audio(tr, func(pts int64, aus [][]byte) error {
					d.audioFrames(pts, aus)
					return nil
				})
			}
		}
	}
	if !video && !audio {
		return errors.Join(ErrNoTracks, readErr)
	}
	for {
		if err := rd.Read(); err != nil {
			break // io.EOF: the reader is over bytes, and fails no other way
		}
	}
	if err := d.flush(emit); err != nil {
		return err
	}
	return readErr
}

// unwrap turns a raw 33-bit 90 kHz timestamp into ticks on a line that
// does not wrap: each value is taken as the nearest to the previous one.
func (d *Demuxer) unwrap(raw int64) int64 {
	raw &= 1<<33 - 1
	if !d.clockSet {
		d.clockSet, d.prevRaw, d.ticks = true, raw, raw
		return d.ticks
	}
	d.ticks += signed33(raw - d.prevRaw)
	d.prevRaw = raw
	return d.ticks
}

// signed33 reads a 33-bit difference as a signed one.
func signed33(v int64) int64 {
	v &= 1<<33 - 1
	if v >= 1<<32 {
		v -= 1 << 33
	}
	return v
}

// ms converts 90 kHz ticks to milliseconds, rounding down.
func ms(ticks int64) int64 {
	if ticks < 0 {
		return -((-ticks + 89) / 90)
	}
	return ticks / 90
}

// video takes one access unit of codec (codecAVC or codecHEVC): its NAL
// units without start codes, with PTS and DTS in raw 90 kHz.
func (d *Demuxer) video(codec int, pts, dts int64, au [][]byte) {
	if codec != d.codec {
		// Another codec: the parameter sets of the old one are useless.
		d.codec, d.vps, d.sps, d.pps, d.changed = codec, nil, nil, nil, true
	}
	key := false
	frame := d.nalus[:0] // the NAL units that go into the frame tag
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		if codec == codecAVC {
			switch h264.NALUType(n[0] & 0x1f) {
			case h264.NALUTypeSPS:
				d.keep(&d.sps, n)
				continue
			case h264.NALUTypePPS:
				d.keep(&d.pps, n)
				continue
			case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeEndOfSequence,
				h264.NALUTypeEndOfStream, h264.NALUTypeFillerData:
				// Delimiters carry nothing in length-prefixed form; an
				// end of sequence makes players stop decoding.
				continue
			case h264.NALUTypeIDR:
				key = true
			}
		} else {
			if len(n) < 2 {
				continue
			}
			switch t := h265.NALUType(n[0] >> 1 & 0x3f); {
			case t == h265.NALUType_VPS_NUT:
				d.keep(&d.vps, n)
				continue
			case t == h265.NALUType_SPS_NUT:
				d.keep(&d.sps, n)
				continue
			case t == h265.NALUType_PPS_NUT:
				d.keep(&d.pps, n)
				continue
			case t == h265.NALUType_AUD_NUT, t == h265.NALUType_EOS_NUT,
				t == h265.NALUType_EOB_NUT, t == h265.NALUType_FD_NUT:
				continue
			case t >= h265.NALUType_BLA_W_LP && t <= h265.NALUType_CRA_NUT:
				key = true // an IRAP picture
			}
		}
		frame = append(frame, n)
	}
	d.nalus = frame[:0]
	if len(frame) == 0 {
		return // parameter sets alone
	}
	if d.sps == nil || d.pps == nil || (codec == codecHEVC && d.vps == nil) {
		d.stats.NoParameterSets++
		return
	}
	dtsTicks := d.unwrap(dts)
	ptsTicks := dtsTicks + signed33(pts-dts)
	dtsMS := ms(dtsTicks)
	cts := min(max(ms(ptsTicks)-dtsMS, -(1<<23)), 1<<23-1)
	if d.changed || !d.haveHeader {
		var record []byte
		var err error
		if codec == codecAVC {
			record, err = avcConfig(d.sps, d.pps)
		} else {
			record, err = hevcConfig(d.vps, d.sps, d.pps)
		}
		if err != nil {
			// Parameter sets no decoder could use: wait for others.
			d.stats.DecodeErrors++
			d.stats.NoParameterSets++
			d.sps = nil
			return
		}
		start := len(d.arena)
		d.arena = append(d.arena, 1<<4|byte(codec), 0, 0, 0, 0)
		d.arena = append(d.arena, record...)
		d.haveHeader = true
		d.pending = append(d.pending, pendingTag{typ: flv.TagVideo, ts: dtsMS, start: start, end: len(d.arena)})
		d.changed = false
	}
	frameType := byte(2)
	if key {
		frameType = 1
	}
	start := len(d.arena)
	d.arena = append(d.arena, frameType<<4|byte(codec), 1, byte(cts>>16), byte(cts>>8), byte(cts))
	for _, n := range frame {
		d.arena = binary.BigEndian.AppendUint32(d.arena, uint32(len(n)))
		d.arena = append(d.arena, n...)
	}
	d.pending = append(d.pending, pendingTag{typ: flv.TagVideo, ts: dtsMS, start: start, end: len(d.arena)})
}

// keep stores a parameter set, noting whether it changed.
func (d *Demuxer) keep(dst *[]byte, n []byte) {
	if bytes.Equal(*dst, n) {
		return
	}
	*dst = append((*dst)[:0:0], n...)
	d.changed = true
}

// audioSetup takes the AAC configuration of the segment's audio track,
// which mediacommon reads from its first ADTS header, and queues an audio
// sequence header if it differs from the last one sent. It reports whether
// the track can be used.
func (d *Demuxer) audioSetup(c *codecs.MPEG4Audio) bool {
	asc, err := c.Config.Marshal()
	if err != nil || c.Config.SampleRate <= 0 {
		d.stats.DecodeErrors++
		return false
	}
	d.sampleRate = c.Config.SampleRate
	if !bytes.Equal(asc, d.audioConfig) {
		d.audioConfig = asc
		d.queueAudioHeader = true
	}
	return true
}

// audioFrames takes the raw AAC frames of one PES, whose PTS (raw 90 kHz)
// is that of the first frame; each further frame is 1024 samples later.
func (d *Demuxer) audioFrames(pts int64, aus [][]byte) {
	base := d.unwrap(pts)
	for i, au := range aus {
		ts := ms(base + int64(i)*1024*90000/int64(d.sampleRate))
		if d.queueAudioHeader {
			start := len(d.arena)
			d.arena = append(d.arena, 0xaf, 0)
			d.arena = append(d.arena, d.audioConfig...)
			d.pending = append(d.pending, pendingTag{typ: flv.TagAudio, ts: ts, start: start, end: len(d.arena)})
			d.queueAudioHeader = false
		}
		start := len(d.arena)
		d.arena = append(d.arena, 0xaf, 1)
		d.arena = append(d.arena, au...)
		d.pending = append(d.pending, pendingTag{typ: flv.TagAudio, ts: ts, start: start, end: len(d.arena)})
	}
}

// flush emits the segment's tags on the stream's timeline: the video and
// audio tags, each stream in the order read (decode order, with every
// sequence header before the frames that need it), merged by timestamp.
// A stream whose timestamps go back has them clamped rather than its tags
// reordered.
func (d *Demuxer) flush(emit func(*flv.Tag) error) error {
	if len(d.pending) == 0 {
		return nil
	}
	var queue [2][]int // per stream, indexes into pending
	for s := range queue {
		queue[s] = d.queues[s][:0]
	}
	for i, p := range d.pending {
		s := stream(p.typ)
		queue[s] = append(queue[s], i)
	}
	d.queues = queue
	// Where each stream's timestamps start in this segment.
	var first [2]int64
	var have [2]bool
	for s := range queue {
		if len(queue[s]) > 0 {
			first[s], have[s] = d.pending[queue[s][0]].ts, true
		}
	}
	start := first[0] // the earliest of those
	switch {
	case !have[0]:
		start = first[1]
	case have[1]:
		start = min(first[0], first[1])
	}
	switch {
	case !d.based:
		// The stream's first segment starts at 0.
		d.offset, d.based = -start, true
	default:
		// Where each stream would start against where it left off, one
		// frame on; video decides, since a muxer may send audio some way
		// ahead of video.
		var gap [2]int64
		var known [2]bool
		step := [2]int64{d.audioFrame, d.frame}
		for s := range gap {
			if have[s] && d.haveOut[s] {
				gap[s], known[s] = first[s]+d.offset-(d.lastOut[s]+step[s]), true
			}
		}
		g := gap[1]
		if !known[1] {
			g = gap[0]
		}
		if (known[0] || known[1]) && abs(g) > jumpThreshold {
			// Move the segment so that neither stream overlaps what
			// came before: the one that needs the larger move sets it,
			// and the other starts a little late.
			if known[0] && (!known[1] || gap[0] < gap[1]) {
				g = gap[0]
			}
			d.offset -= g
			d.stats.Jumps++
		}
	}
	// A stream's sequence header at the start of the segment goes out
	// before any frame, at the segment's first timestamp: a file opened at
	// the first keyframe then has both headers, as an FLV stream sends
	// them (flv.Repairer starts a new file for audio that starts late).
	for _, s := range []int{1, 0} {
		if len(queue[s]) > 0 && d.isHeader(d.pending[queue[s][0]]) {
			p := d.pending[queue[s][0]]
			p.ts = start
			queue[s] = queue[s][1:]
			if err := d.emit(s, p, emit); err != nil {
				return err
			}
		}
	}
	for len(queue[0]) > 0 || len(queue[1]) > 0 {
		s := 1
		if len(queue[1]) == 0 || (len(queue[0]) > 0 && d.pending[queue[0][0]].ts < d.pending[queue[1][0]].ts) {
			s = 0
		}
		p := d.pending[queue[s][0]]
		queue[s] = queue[s][1:]
		if err := d.emit(s, p, emit); err != nil {
			return err
		}
	}
	return nil
}

// emit sends one tag of stream s (0 audio, 1 video), clamping its time so
// that the stream never goes back.
func (d *Demuxer) emit(s int, p pendingTag, emit func(*flv.Tag) error) error {
	out := max(p.ts+d.offset, 0)
	if d.haveOut[s] && out < d.lastOut[s] {
		out = d.lastOut[s]
		d.stats.Clamped++
	}
	data := d.arena[p.start:p.end]
	header := d.isHeader(p)
	if step := out - d.lastOut[s]; !header && d.haveOut[s] && step > 0 && step < jumpThreshold {
		if s == 1 {
			d.frame = step
		} else {
			d.audioFrame = step
		}
	}
	d.lastOut[s], d.haveOut[s] = out, true
	switch {
	case header:
		d.stats.SequenceHeaders++
	case s == 1:
		d.stats.VideoFrames++
	default:
		d.stats.AudioFrames++
	}
	d.tag = flv.Tag{Type: p.typ, Timestamp: out, Data: data}
	return emit(&d.tag)
}

// isHeader reports whether p is a sequence header: byte 1 is 0 in AVC,
// HEVC and AAC tags alike, and every tag queued has at least two bytes.
func (d *Demuxer) isHeader(p pendingTag) bool { return d.arena[p.start+1] == 0 }

func stream(t flv.TagType) int {
	if t == flv.TagVideo {
		return 1
	}
	return 0
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
