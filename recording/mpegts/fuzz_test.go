package mpegts

import (
	"bytes"
	"encoding/binary"
	"testing"

	"roomrec/recording/flv"
)

// FuzzSegment feeds arbitrary bytes to a Demuxer as two segments in a row
// and checks that it does not panic and that what it emits is sound: each
// stream's time never goes back, no video frame comes before a video
// sequence header, and every tag has the layout the FLV code expects, with
// frames made of whole length-prefixed NAL units.
func FuzzSegment(f *testing.F) {
	for _, name := range []string{"tiny_h264.ts", "tiny_hevc.ts", "h264_0.ts", "noparams_1.ts"} {
		// Whole tiny segments, and prefixes of the larger ones: small
		// enough for the fuzzer to mutate quickly.
		seg := readFixture(f, name)
		f.Add(seg[:min(len(seg), 40*188)])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDemuxer()
		var last [2]int64
		var have [2]bool
		header := false
		check := func(tag *flv.Tag) error {
			s := 0
			if tag.Type == flv.TagVideo {
				s = 1
			}
			if have[s] && tag.Timestamp < last[s] {
				t.Fatalf("%v at %d ms after %d", tag.Type, tag.Timestamp, last[s])
			}
			last[s], have[s] = tag.Timestamp, true
			b := tag.Data
			switch tag.Type {
			case flv.TagAudio:
				if len(b) < 2 || b[0] != 0xaf || b[1] > 1 {
					t.Fatalf("audio tag % x", b[:min(len(b), 4)])
				}
			case flv.TagVideo:
				if len(b) < 5 || (b[0]&0x0f != codecAVC && b[0]&0x0f != codecHEVC) || b[1] > 1 {
					t.Fatalf("video tag % x", b[:min(len(b), 5)])
				}
				if tag.IsSequenceHeader() {
					header = true
					break
				}
				if !header {
					t.Fatal("a video frame before any sequence header")
				}
				for p := b[5:]; len(p) > 0; {
					if len(p) < 4 || int(binary.BigEndian.Uint32(p)) > len(p)-4 || binary.BigEndian.Uint32(p) == 0 {
						t.Fatalf("frame with a broken NAL unit length: % x", p[:min(len(p), 8)])
					}
					p = p[4+binary.BigEndian.Uint32(p):]
				}
			default:
				t.Fatalf("tag of type %v", tag.Type)
			}
			return nil
		}
		for range 2 {
			if err := d.Segment(bytes.NewReader(data), check); err != nil {
				return
			}
		}
	})
}
