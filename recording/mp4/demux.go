package mp4

import (
	"errors"
	"fmt"

	"roomrec/recording/flv"
)

// ErrNoInit is returned by Demuxer.Segment before a successful Init.
var ErrNoInit = errors.New("fmp4 segment before its init")

// Demuxer turns fragmented MP4, as HLS serves it (an init segment, then
// media segments of moof and mdat boxes), into FLV tags for the repair
// pipeline: video tags of codec 7 (H.264) or 12 (H.265), AAC audio tags,
// timestamps in ms. It reuses its buffers: a tag passed to emit is valid
// only during the call. A Demuxer is not safe for concurrent use.
type Demuxer struct {
	video, audio *track
	p            fragmentParser
	tag          flv.Tag
	buf          []byte
}

// Init reads an initialization segment (ftyp and moov) and returns the FLV
// sequence header tags of its tracks at timestamp 0: the video one (the
// init's avcC or hvcC record as it is) first, then the audio one (the
// AudioSpecificConfig). Only the first video and the first audio track are
// used; a track of another codec is ignored. It returns an error wrapping
// ErrNotMP4 if b holds no usable init, and the Demuxer keeps its previous
// init then. A new init resets the tracks' timing.
func (d *Demuxer) Init(b []byte) ([]*flv.Tag, error) {
	video, audio, _, err := parseInit(b)
	if err != nil {
		return nil, err
	}
	d.video, d.audio = video, audio
	d.p = fragmentParser{tracks: [2]*track{video, audio}, keep: true}
	var tags []*flv.Tag
	if video != nil {
		tags = append(tags, &flv.Tag{Type: flv.TagVideo, Data: video.header})
	}
	if audio != nil {
		tags = append(tags, &flv.Tag{Type: flv.TagAudio, Data: audio.header})
	}
	return tags, nil
}

// Segment reads a media segment: any number of moof and mdat boxes (and
// styp, sidx and the like, which it skips), each track in its own traf or
// moof. It calls emit for every sample, video and audio merged in decode
// order (video first at equal times), with the DTS from tfdt and the sample
// durations, the composition offset from trun, and the keyframe flag from
// the sample flags. A track that goes back in time within the segment is
// corrupt. On a corrupt or cut-off box it still emits the samples of the
// whole fragments before it, then returns the error; an error from emit
// stops it at once and is returned as it is. A tag's data may lie in b,
// whose few bytes before it are changed during the call to emit and put
// back after it: b must not be read elsewhere while Segment runs.
func (d *Demuxer) Segment(b []byte, emit func(*flv.Tag) error) error {
	if d.video == nil && d.audio == nil {
		return ErrNoInit
	}
	d.p.begin()
	var perr error
	for pos := 0; pos < len(b); {
		typ, body, next, err := nextBox(b, pos)
		if err != nil {
			perr = fmt.Errorf("%w: segment: %w", errCorrupt, err)
			break
		}
		if typ == typeMoof {
			if err := d.p.parseMoof(body, int64(pos), 0, int64(len(b))); err != nil {
				perr = err
				break
			}
		}
		pos = next
	}
	if err := d.emit(b, emit); err != nil {
		return err
	}
	if perr != nil {
		return fmt.Errorf("fmp4 segment: %w", perr)
	}
	return nil
}

// emit hands the parsed samples to fn in decode order.
func (d *Demuxer) emit(b []byte, fn func(*flv.Tag) error) error {
	var vs, as []sample
	if d.video != nil {
		vs = d.video.samples
	}
	if d.audio != nil {
		as = d.audio.samples
	}
	for len(vs) > 0 || len(as) > 0 {
		var s sample
		if len(as) == 0 || len(vs) > 0 && vs[0].dts <= as[0].dts {
			s, vs = vs[0], vs[1:]
			frame := byte(0x20)
			if s.key {
				frame = 0x10
			}
			c := uint32(s.cts)
			d.buf = append(d.buf[:0], frame|d.video.codec, 1, byte(c>>16), byte(c>>8), byte(c))
			d.tag.Type = flv.TagVideo
		} else {
			s, as = as[0], as[1:]
			d.buf = append(d.buf[:0], 0xaf, 1)
			d.tag.Type = flv.TagAudio
		}
		d.tag.Timestamp, d.tag.StreamID = s.dts, 0
		if err := d.emitSample(b, s, fn); err != nil {
			return err
		}
	}
	return nil
}

// emitSample hands fn the tag of one sample whose FLV prefix (frame type,
// codec, composition time) is in d.buf. The tag's data is made in place
// in b where it can be: the prefix goes over the bytes just before the
// sample (a box header, or the end of another sample), which are put back
// when fn returns, so b is as it was and a segment's frames are not copied
// on their way to the file.
func (d *Demuxer) emitSample(b []byte, s sample, fn func(*flv.Tag) error) error {
	n := int64(len(d.buf))
	if s.off < n {
		d.buf = append(d.buf, b[s.off:s.off+s.size]...)
		d.tag.Data = d.buf
		return fn(&d.tag)
	}
	var saved [5]byte
	at := b[s.off-n : s.off]
	copy(saved[:], at)
	copy(at, d.buf)
	d.tag.Data = b[s.off-n : s.off+s.size : s.off+s.size]
	err := fn(&d.tag)
	copy(at, saved[:n])
	return err
}
