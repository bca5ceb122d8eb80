package mpegts

import (
	"bytes"
	"testing"

	"roomrec/recording/flv"
)

// BenchmarkDemuxTS demuxes the three H.264 fixture segments (3 s of
// 256x144 video and 48 kHz AAC) per iteration, the tags going nowhere;
// MB/s is of TS input.
func BenchmarkDemuxTS(b *testing.B) {
	segs := fixtures(b, "h264_0.ts", "h264_1.ts", "h264_2.ts")
	total := 0
	for _, s := range segs {
		total += len(s)
	}
	b.SetBytes(int64(total))
	b.ReportAllocs()
	d := NewDemuxer()
	discard := func(*flv.Tag) error { return nil }
	var r bytes.Reader
	for b.Loop() {
		for _, s := range segs {
			r.Reset(s)
			if err := d.Segment(&r, discard); err != nil {
				b.Fatal(err)
			}
		}
	}
}
