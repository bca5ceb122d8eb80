package mp4

import (
	"testing"

	"roomrec/recording/flv"
)

// tagWriter is what both file writers offer.
type tagWriter interface {
	WriteTag(*flv.Tag) error
}

// benchRemux demuxes the H.264 fixture's segments again and again into w,
// each pass later than the one before, as an HLS recording does: the
// bytes counted are the segments'. Target: 300 MB/s, no allocations.
// Measured on the 2-core workplace machine, shared: 3,100 to 6,700 MB/s
// into MP4 and 3,000 to 7,600 MB/s into FLV, 0 allocations a pass.
func benchRemux(b *testing.B, w tagWriter) {
	f := loadFixture(b, "h264")
	var d Demuxer
	headers, err := d.Init(f.init)
	if err != nil {
		b.Fatal(err)
	}
	for _, h := range headers {
		if err := w.WriteTag(h); err != nil {
			b.Fatal(err)
		}
	}
	var shift, passLen int64
	for _, tag := range f.demux(b) {
		passLen = max(passLen, tag.Timestamp+100)
	}
	emit := func(t *flv.Tag) error {
		t.Timestamp += shift
		return w.WriteTag(t)
	}
	var n int
	for _, s := range f.segments {
		n += len(s)
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		for _, s := range f.segments {
			if err := d.Segment(s, emit); err != nil {
				b.Fatal(err)
			}
		}
		shift += passLen
	}
}

func BenchmarkRemuxFMP4ToMP4(b *testing.B) {
	benchRemux(b, NewFileWriter(discard{}, discard{}))
}

func BenchmarkRemuxFMP4ToFLV(b *testing.B) {
	w := flv.NewFileWriter(discard{}, discard{})
	if err := w.WriteHeader(); err != nil {
		b.Fatal(err)
	}
	benchRemux(b, w)
}

// BenchmarkDemux is the demuxer alone, for comparison with mediacommon's
// fmp4.Parts.Unmarshal on the same segments (107 MB/s, 20 allocations per
// sample, measured when this package was written).
func BenchmarkDemux(b *testing.B) {
	benchRemux(b, discardTags{})
}

type discardTags struct{}

func (discardTags) WriteTag(*flv.Tag) error { return nil }
