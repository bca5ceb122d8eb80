package mp4

import (
	"bytes"
	"testing"

	"roomrec/recording/flv"
)

// TestDemuxLeavesSegment checks that the frames Segment hands on in place
// leave the segment as it was, and that each tag's data is its FLV prefix
// and the sample, whatever lay before the sample in the segment: the same
// tags come out of a second pass over the same bytes.
func TestDemuxLeavesSegment(t *testing.T) {
	for _, name := range fixtureNames {
		f := loadFixture(t, name)
		var d Demuxer
		if _, err := d.Init(f.init); err != nil {
			t.Fatal(err)
		}
		for i, seg := range f.segments {
			orig := bytes.Clone(seg)
			var first []*flv.Tag
			for pass := range 2 {
				n := 0
				err := d.Segment(seg, func(tag *flv.Tag) error {
					if pass == 0 {
						first = append(first, tag.Clone())
					} else if !bytes.Equal(tag.Data, first[n].Data) || tag.Timestamp != first[n].Timestamp {
						t.Fatalf("%s segment %d: tag %d differs on the second pass", name, i, n)
					}
					n++
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(seg, orig) {
					t.Fatalf("%s segment %d: Segment changed its input", name, i)
				}
			}
		}
	}
}
