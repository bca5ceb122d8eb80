package recording

import (
	"bytes"

	"roomrec/recording/flv"
	"roomrec/recording/mp4"
	"roomrec/recording/mpegts"
)

// newSegmentDemuxer returns the demuxer for an HLS format: "fmp4" or "ts".
func newSegmentDemuxer(format string) segmentDemuxer {
	if format == "ts" {
		return &tsDemuxer{d: mpegts.NewDemuxer()}
	}
	return &fmp4Demuxer{}
}

// fmp4Demuxer reads fMP4 segments: the codec configuration comes from the
// init segment, the frames from each moof/mdat.
type fmp4Demuxer struct{ d mp4.Demuxer }

func (x *fmp4Demuxer) Init(b []byte, emit func(*flv.Tag) error) error {
	headers, err := x.d.Init(b)
	if err != nil {
		return err
	}
	for _, h := range headers {
		if err := emit(h); err != nil {
			return err
		}
	}
	return nil
}

func (x *fmp4Demuxer) Segment(b []byte, emit func(*flv.Tag) error) error {
	return x.d.Segment(b, emit)
}

// tsDemuxer reads MPEG-TS segments, which carry their codec configuration
// in band (parameter sets, ADTS headers): there is no init segment.
type tsDemuxer struct {
	d *mpegts.Demuxer
	r bytes.Reader
}

func (x *tsDemuxer) Init([]byte, func(*flv.Tag) error) error { return nil }

func (x *tsDemuxer) Segment(b []byte, emit func(*flv.Tag) error) error {
	x.r.Reset(b)
	return x.d.Segment(&x.r, emit)
}
