package mp4

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"roomrec/recording/flv"
)

// TestRemuxFixturesFFprobe demuxes ffmpeg's HLS segments, writes them
// through the Repairer (as a recording does) and straight into a
// FileWriter, and checks with ffprobe that the file is clean and holds the
// same media as ffmpeg's.
func TestRemuxFixturesFFprobe(t *testing.T) {
	for _, name := range fixtureNames {
		for _, repair := range []bool{true, false} {
			t.Run(name+map[bool]string{true: "/repaired", false: "/direct"}[repair], func(t *testing.T) {
				f := loadFixture(t, name)
				want := ffprobe(t, f.whole(), ".mp4")
				out, st := writeMP4(t, f.demux(t), repair)
				got := ffprobe(t, out, ".mp4")
				got.checkMonotonic(t)
				for _, typ := range []string{"video", "audio"} {
					if g, w := got.count(t, typ), want.count(t, typ); g != w || g == 0 {
						t.Errorf("%s packets: got %d, want %d", typ, g, w)
					}
				}
				if g, w := got.duration(t), want.duration(t); math.Abs(g-w) > 0.2 {
					t.Errorf("duration: got %.3f s, want %.3f s", g, w)
				}
				if d := st.Duration.Seconds(); math.Abs(d-got.duration(t)) > 0.1 {
					t.Errorf("FileStats duration %.3f s, ffprobe %.3f s", d, got.duration(t))
				}
				if st.Keyframes != 4 || !st.HasAudio || !st.HasVideo {
					t.Errorf("stats %+v, want 4 keyframes, audio and video", st)
				}
				// Keyframes where ffmpeg put them: one a second.
				var keys []string
				for _, p := range got.Packets {
					if got.Streams[p.Stream].CodecType == "video" && p.Flags[0] == 'K' {
						keys = append(keys, p.DTS)
					}
				}
				if len(keys) != 4 {
					t.Errorf("keyframes at %v, want 4", keys)
				}
			})
		}
	}
}

// TestRemuxFixtureToFLVFFprobe writes the demuxed H.264 fixture through
// the Repairer into an FLV file, the other container a recording can
// have (ffmpeg 5.1 cannot read FLV's codec 12, so HEVC is left out).
func TestRemuxFixtureToFLVFFprobe(t *testing.T) {
	f := loadFixture(t, "h264")
	want := ffprobe(t, f.whole(), ".mp4")
	var file memFile
	w := flv.NewFileWriter(&file, &file)
	if err := w.WriteHeader(); err != nil {
		t.Fatal(err)
	}
	rep := flv.NewRepairer(sinkTo{w}, flv.RepairOptions{})
	rep.StreamRestarted()
	for _, tag := range f.demux(t) {
		if err := rep.Feed(tag); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	got := ffprobe(t, file.Bytes(), ".flv")
	got.checkMonotonic(t)
	for _, typ := range []string{"video", "audio"} {
		if g, w := got.count(t, typ), want.count(t, typ); g != w {
			t.Errorf("%s packets: got %d, want %d", typ, g, w)
		}
	}
	if g, w := got.duration(t), want.duration(t); math.Abs(g-w) > 0.2 {
		t.Errorf("duration: got %.3f s, want %.3f s", g, w)
	}
}

// TestRoundTrip writes the fixtures' tags and reads the file back: the
// same tags come out, timestamps, keyframes, composition offsets and
// bytes, sequence headers included.
func TestRoundTrip(t *testing.T) {
	for _, name := range fixtureNames {
		t.Run(name, func(t *testing.T) {
			tags := loadFixture(t, name).demux(t)
			out, _ := writeMP4(t, tags, false)
			back := readBack(t, out)
			compareTags(t, back, tags)
		})
	}
}

// readBack demuxes a file this package wrote: its init, then the rest as
// one segment.
func readBack(t testing.TB, file []byte) []*flv.Tag {
	t.Helper()
	_, _, initEnd, err := parseInit(file)
	if err != nil {
		t.Fatal(err)
	}
	var d Demuxer
	tags, err := d.Init(file[:initEnd])
	if err != nil {
		t.Fatal(err)
	}
	err = d.Segment(file[initEnd:], func(tag *flv.Tag) error {
		tags = append(tags, tag.Clone())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tags
}

// compareTags checks tags against want. Tags of each type must match in
// order; how audio and video interleave may differ, since the reader
// orders by decode time and the input may not.
func compareTags(t testing.TB, got, want []*flv.Tag) {
	t.Helper()
	for _, typ := range []flv.TagType{flv.TagVideo, flv.TagAudio} {
		g, w := ofType(got, typ), ofType(want, typ)
		if len(g) != len(w) {
			t.Fatalf("%v tags: got %d, want %d", typ, len(g), len(w))
		}
		for i := range g {
			if g[i].Timestamp != w[i].Timestamp || !bytes.Equal(g[i].Data, w[i].Data) {
				t.Fatalf("%v tag %d: got ts %d data %x…, want ts %d data %x…", typ, i,
					g[i].Timestamp, g[i].Data[:min(8, len(g[i].Data))], w[i].Timestamp, w[i].Data[:min(8, len(w[i].Data))])
			}
		}
	}
}

func ofType(tags []*flv.Tag, typ flv.TagType) []*flv.Tag {
	var out []*flv.Tag
	for _, t := range tags {
		if t.Type == typ {
			out = append(out, t)
		}
	}
	return out
}

// TestFragmentsPerGOP checks the fragment layout: each fragment's video
// starts with a keyframe when the GOP is short, and fragments stay near
// 2 s when keyframes are far apart.
func TestFragmentsPerGOP(t *testing.T) {
	tags := loadFixture(t, "h264").demux(t)
	out, _ := writeMP4(t, tags, false)
	frags := fragmentStarts(t, out)
	if len(frags) != 4 {
		t.Errorf("%d fragments for 4 GOPs", len(frags))
	}

	// One keyframe only: fragments are cut every 2 s.
	var long []*flv.Tag
	for _, tag := range tags {
		if tag.Type == flv.TagVideo && !tag.IsSequenceHeader() && tag.Timestamp > 0 && tag.IsKeyframe() {
			c := tag.Clone()
			c.Data[0] = 0x20 | c.Data[0]&0x0f
			tag = c
		}
		long = append(long, tag)
	}
	out, _ = writeMP4(t, long, false)
	spans := videoSpans(t, out)
	if len(spans) < 2 {
		t.Errorf("%d fragments for 4 s without keyframes", len(spans))
	}
	for i, s := range spans {
		if s > maxFragment {
			t.Errorf("fragment %d holds %d ms of video", i, s)
		}
	}
	compareTags(t, readBack(t, out), long)
}

// videoSpans returns, for each fragment of a file, the time from its first
// video sample to the end of its last.
func videoSpans(t testing.TB, file []byte) []int64 {
	t.Helper()
	video, audio, _, err := parseInit(file)
	if err != nil {
		t.Fatal(err)
	}
	p := fragmentParser{tracks: [2]*track{video, audio}, keep: true}
	var spans []int64
	for _, pos := range fragmentStarts(t, file) {
		p.begin()
		_, body, _, _ := nextBox(file, pos)
		if err := p.parseMoof(body, int64(pos), 0, int64(len(file))); err != nil {
			t.Fatal(err)
		}
		if s := video.samples; len(s) > 0 {
			end, _ := ticksToMs(video.next, int64(video.timescale))
			spans = append(spans, end-s[0].dts)
		}
	}
	return spans
}

// fragmentStarts returns the offset of each moof of a file.
func fragmentStarts(t testing.TB, file []byte) []int {
	t.Helper()
	var out []int
	for pos := 0; pos < len(file); {
		typ, _, next, err := nextBox(file, pos)
		if err != nil {
			t.Fatal(err)
		}
		if typ == typeMoof {
			out = append(out, pos)
		}
		pos = next
	}
	return out
}

// TestWriterRejects checks the errors the writer gives for what the
// Repairer never sends.
func TestWriterRejects(t *testing.T) {
	tags := loadFixture(t, "h264").demux(t)
	vh, ah, key := tags[0], tags[1], tags[2]
	if !vh.IsSequenceHeader() || !ah.IsSequenceHeader() || !key.IsKeyframe() {
		t.Fatal("fixture does not start with the headers and a keyframe")
	}
	otherHeader := vh.Clone()
	otherHeader.Data[len(otherHeader.Data)-1] ^= 0xff
	back := key.Clone()
	back.Timestamp = 100
	earlier := key.Clone()
	earlier.Timestamp = 50
	mp3 := &flv.Tag{Type: flv.TagAudio, Data: []byte{0x2f, 0xff, 0xfb}}
	tests := []struct {
		name string
		tags []*flv.Tag
		want error // nil: any error
	}{
		{"codec change", []*flv.Tag{vh, ah, key, otherHeader}, ErrCodecChange},
		{"late audio header", []*flv.Tag{vh, key, ah}, ErrCodecChange},
		{"frame before header", []*flv.Tag{key}, nil},
		{"audio before header", []*flv.Tag{vh, key, tags[3]}, nil},
		{"time goes back", []*flv.Tag{vh, ah, back, earlier}, nil},
		{"mp3", []*flv.Tag{vh, key, mp3}, ErrUnsupported},
		{"empty avcC", []*flv.Tag{{Type: flv.TagVideo, Data: []byte{0x17, 0, 0, 0, 0}}}, nil},
		{"short AudioSpecificConfig", []*flv.Tag{vh, {Type: flv.TagAudio, Data: []byte{0xaf, 0, 0x11}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var file memFile
			w := NewFileWriter(&file, &file)
			var err error
			for _, tag := range tt.tags {
				if err = w.WriteTag(tag); err != nil {
					break
				}
			}
			if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	// A repeat of the file's own header is fine.
	var file memFile
	w := NewFileWriter(&file, &file)
	for _, tag := range []*flv.Tag{vh, ah, key, vh, ah} {
		if err := w.WriteTag(tag); err != nil {
			t.Fatal(err)
		}
	}
}

// failingFile accepts limit bytes, then fails every write, as a full disk.
type failingFile struct {
	memFile
	limit int
}

var errDiskFull = errors.New("disk full")

func (f *failingFile) Write(p []byte) (int, error) {
	room := f.limit - f.Len()
	if room >= len(p) {
		return f.memFile.Write(p)
	}
	f.memFile.Write(p[:max(room, 0)])
	return max(room, 0), errDiskFull
}

// TestWriterDiskFull cuts the file at every kind of point and checks that
// Complete ends on a whole fragment that plays, with Finish's stats and
// rewritten durations matching it.
func TestWriterDiskFull(t *testing.T) {
	tags := loadFixture(t, "h264").demux(t)
	full, _ := writeMP4(t, tags, false)
	frags := fragmentStarts(t, full)
	for _, limit := range []int{0, 100, frags[0], frags[1] + 10, frags[2] - 1, frags[2], frags[3] + 1000} {
		f := &failingFile{limit: limit}
		w := NewFileWriter(f, f)
		var err error
		for _, tag := range tags {
			if err = w.WriteTag(tag); err != nil {
				break
			}
		}
		st, ferr := w.Finish()
		if !errors.Is(err, errDiskFull) && !errors.Is(ferr, errDiskFull) {
			t.Fatalf("limit %d: got %v, %v, want the disk error", limit, err, ferr)
		}
		if st.Size != w.Complete() || w.Complete() > int64(f.Len()) {
			t.Fatalf("limit %d: size %d, complete %d, on disk %d", limit, st.Size, w.Complete(), f.Len())
		}
		kept := f.Bytes()[:w.Complete()]
		end, dur, serr := ScanComplete(bytes.NewReader(kept), int64(len(kept)))
		if limit < frags[0] {
			if w.Complete() != 0 || !errors.Is(serr, ErrNotMP4) {
				t.Fatalf("limit %d: complete %d, scan %v; want nothing kept", limit, w.Complete(), serr)
			}
			continue
		}
		if serr != nil || end != int64(len(kept)) || dur != st.Duration {
			t.Fatalf("limit %d: scan of the kept part: end %d of %d, duration %v (stats %v), %v", limit, end, len(kept), dur, st.Duration, serr)
		}
		if len(kept) > frags[0] {
			p := ffprobe(t, kept, ".mp4")
			p.checkMonotonic(t)
			if d := p.duration(t); math.Abs(d-st.Duration.Seconds()) > 0.1 {
				t.Errorf("limit %d: ffprobe duration %.3f, stats %v", limit, d, st.Duration)
			}
		}
	}
}

// TestWriterAllocs checks that a steady stream allocates nothing per tag.
func TestWriterAllocs(t *testing.T) {
	tags := loadFixture(t, "h264").demux(t)
	w := NewFileWriter(discard{}, discard{})
	for _, tag := range tags {
		if err := w.WriteTag(tag); err != nil {
			t.Fatal(err)
		}
	}
	frames := tags[2:]
	base := tags[len(tags)-1].Timestamp + 100
	loop := int64(0)
	allocs := testing.AllocsPerRun(20, func() {
		loop++
		for _, tag := range frames {
			c := *tag
			c.Timestamp += base * loop
			if err := w.WriteTag(&c); err != nil {
				t.Fatal(err)
			}
		}
	})
	if perTag := allocs / float64(len(frames)); perTag > 0.01 {
		t.Errorf("%.3f allocations per tag", perTag)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error)            { return len(p), nil }
func (discard) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }
