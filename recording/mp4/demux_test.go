package mp4

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"roomrec/recording/flv"
)

// TestDemuxMatchesFFprobe checks the demuxer against ffmpeg's reading of
// the same files: as many packets per stream, the same sizes, keyframes,
// decode-time steps and composition offsets, and the sequence headers
// first.
func TestDemuxMatchesFFprobe(t *testing.T) {
	for _, name := range fixtureNames {
		t.Run(name, func(t *testing.T) {
			f := loadFixture(t, name)
			tags := f.demux(t)
			checkHeaders(t, tags, name == "hevc")
			checkAgainst(t, ffprobe(t, f.whole(), ".mp4"), tags[2:])
		})
	}
	t.Run("separate moofs", func(t *testing.T) {
		file, err := os.ReadFile(filepath.Join("testdata", "separate.mp4"))
		if err != nil {
			t.Fatal(err)
		}
		tags := readBack(t, file)
		checkHeaders(t, tags, false)
		checkAgainst(t, ffprobe(t, file, ".mp4"), tags[2:])
	})
}

func checkHeaders(t *testing.T, tags []*flv.Tag, hevc bool) {
	t.Helper()
	codec := byte(codecAVC)
	if hevc {
		codec = codecHEVC
	}
	if len(tags) < 3 || !tags[0].IsSequenceHeader() || tags[0].Type != flv.TagVideo || tags[0].Data[0] != 0x10|codec ||
		!tags[1].IsSequenceHeader() || tags[1].Type != flv.TagAudio || !tags[2].IsKeyframe() {
		t.Fatalf("tags do not start with the video and audio headers and a keyframe")
	}
	for _, tag := range tags[2:] {
		if tag.IsSequenceHeader() || tag.Type == flv.TagVideo && tag.Data[0]&0x0f != codec {
			t.Fatalf("unexpected tag %x at %d", tag.Data[:2], tag.Timestamp)
		}
	}
}

// checkAgainst compares media tags with ffprobe's packets, stream by
// stream. Times are compared as steps from the first packet, since ffmpeg
// applies the edit lists that FLV has no place for.
func checkAgainst(t *testing.T, p probe, tags []*flv.Tag) {
	t.Helper()
	for _, typ := range []flv.TagType{flv.TagVideo, flv.TagAudio} {
		stream := -1
		for _, s := range p.Streams {
			if s.CodecType == typ.String() {
				stream = s.Index
			}
		}
		var pkts []int
		for i, pk := range p.Packets {
			if pk.Stream == stream {
				pkts = append(pkts, i)
			}
		}
		got := ofType(tags, typ)
		if len(got) != len(pkts) || len(got) == 0 {
			t.Fatalf("%v: %d tags, ffprobe has %d packets", typ, len(got), len(pkts))
		}
		hdr := 2
		if typ == flv.TagVideo {
			hdr = 5
		}
		seconds := func(s string) float64 {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Fatalf("ffprobe time %q", s)
			}
			return v
		}
		dts0 := seconds(p.Packets[pkts[0]].DTS)
		for i, tag := range got {
			pk := p.Packets[pkts[i]]
			if size, _ := strconv.Atoi(pk.Size); len(tag.Data)-hdr != size {
				t.Fatalf("%v %d: %d bytes, ffprobe %d", typ, i, len(tag.Data)-hdr, size)
			}
			if step := seconds(pk.DTS) - dts0; math.Abs(float64(tag.Timestamp-got[0].Timestamp)/1000-step) > 0.0015 {
				t.Fatalf("%v %d: at %d ms, ffprobe %.4f s after the first", typ, i, tag.Timestamp-got[0].Timestamp, step)
			}
			if typ == flv.TagVideo {
				if key := pk.Flags[0] == 'K'; tag.IsKeyframe() != key {
					t.Fatalf("video %d: keyframe %v, ffprobe %v", i, tag.IsKeyframe(), key)
				}
				cts := int32(uint32(tag.Data[2])<<16|uint32(tag.Data[3])<<8|uint32(tag.Data[4])) << 8 >> 8
				if want := seconds(pk.PTS) - seconds(pk.DTS); math.Abs(float64(cts)/1000-want) > 0.0015 {
					t.Fatalf("video %d: composition offset %d ms, ffprobe %.4f s", i, cts, want)
				}
			}
		}
	}
}

// TestDemuxOrder checks that each segment's tags come in decode order.
func TestDemuxOrder(t *testing.T) {
	for _, name := range fixtureNames {
		f := loadFixture(t, name)
		var d Demuxer
		if _, err := d.Init(f.init); err != nil {
			t.Fatal(err)
		}
		for i, seg := range f.segments {
			last := int64(math.MinInt64)
			err := d.Segment(seg, func(tag *flv.Tag) error {
				if tag.Timestamp < last {
					t.Fatalf("%s segment %d: %v tag at %d after %d", name, i, tag.Type, tag.Timestamp, last)
				}
				last = tag.Timestamp
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestDemuxCutSegment cuts a segment of many fragments anywhere: the
// whole fragments before the cut come out, then an error.
func TestDemuxCutSegment(t *testing.T) {
	file, err := os.ReadFile(filepath.Join("testdata", "separate.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	all := readBack(t, file)[2:] // without the sequence headers
	_, _, initEnd, err := parseInit(file)
	if err != nil {
		t.Fatal(err)
	}
	media := file[initEnd:]
	boundaries := map[int]bool{}
	for _, pos := range fragmentStarts(t, media) {
		boundaries[pos] = true
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		cut := rng.IntN(len(media))
		var d Demuxer
		if _, err := d.Init(file[:initEnd]); err != nil {
			t.Fatal(err)
		}
		var got []*flv.Tag
		err := d.Segment(media[:cut], func(tag *flv.Tag) error {
			got = append(got, tag.Clone())
			return nil
		})
		if boundaries[cut] != (err == nil) {
			t.Fatalf("cut at %d (fragment boundary %v): %v", cut, boundaries[cut], err)
		}
		for _, typ := range []flv.TagType{flv.TagVideo, flv.TagAudio} {
			g, w := ofType(got, typ), ofType(all, typ)
			if len(g) > len(w) {
				t.Fatalf("cut at %d: %d %v tags of %d", cut, len(g), typ, len(w))
			}
			for i := range g {
				if g[i].Timestamp != w[i].Timestamp || string(g[i].Data) != string(w[i].Data) {
					t.Fatalf("cut at %d: %v tag %d differs: %d %x, want %d %x", cut, typ, i, g[i].Timestamp, g[i].Data[:8], w[i].Timestamp, w[i].Data[:8])
				}
			}
		}
	}
}

// TestDemuxErrors checks what the demuxer refuses.
func TestDemuxErrors(t *testing.T) {
	var d Demuxer
	if err := d.Segment(nil, nil); !errors.Is(err, ErrNoInit) {
		t.Errorf("segment before init: got %v, want ErrNoInit", err)
	}
	f := loadFixture(t, "h264")
	for name, b := range map[string][]byte{
		"empty":      nil,
		"segment":    f.segments[0],
		"cut init":   f.init[:len(f.init)-10],
		"ftyp alone": f.init[:28],
	} {
		if _, err := d.Init(b); !errors.Is(err, ErrNotMP4) {
			t.Errorf("%s: got %v, want ErrNotMP4", name, err)
		}
	}
	// An emit error stops the segment and comes back as it is.
	if _, err := d.Init(f.init); err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	n := 0
	err := d.Segment(f.segments[0], func(*flv.Tag) error {
		n++
		return stop
	})
	if err != stop || n != 1 {
		t.Errorf("emit error: got %v after %d tags", err, n)
	}
}

// TestDemuxAllocs checks that demuxing allocates nothing per sample once
// its buffers have grown.
func TestDemuxAllocs(t *testing.T) {
	f := loadFixture(t, "h264")
	var d Demuxer
	if _, err := d.Init(f.init); err != nil {
		t.Fatal(err)
	}
	emit := func(*flv.Tag) error { return nil }
	run := func() {
		for _, seg := range f.segments {
			if err := d.Segment(seg, emit); err != nil {
				t.Fatal(err)
			}
		}
	}
	run()
	if allocs := testing.AllocsPerRun(20, run); allocs > 0 {
		t.Errorf("%.1f allocations per pass over the fixture", allocs)
	}
}
