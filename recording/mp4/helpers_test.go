package mp4

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"roomrec/recording/flv"
)

// fixture is an HLS fMP4 stream made by testdata/make-fixtures.sh.
type fixture struct {
	name     string
	init     []byte
	segments [][]byte
}

var fixtureNames = []string{"h264", "hevc"}

func loadFixture(t testing.TB, name string) fixture {
	t.Helper()
	f := fixture{name: name}
	var err error
	if f.init, err = os.ReadFile(filepath.Join("testdata", name, "init.mp4")); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		seg, err := os.ReadFile(filepath.Join("testdata", name, fmt.Sprintf("seg%d.m4s", i)))
		if os.IsNotExist(err) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		f.segments = append(f.segments, seg)
	}
	if len(f.segments) == 0 {
		t.Fatalf("fixture %s has no segments", name)
	}
	return f
}

// whole is the fixture as one fragmented MP4 file, which is how ffprobe
// reads it as a reference.
func (f fixture) whole() []byte {
	return bytes.Join(append([][]byte{f.init}, f.segments...), nil)
}

func (f fixture) size() int {
	n := len(f.init)
	for _, s := range f.segments {
		n += len(s)
	}
	return n
}

// demux returns the fixture's tags, owned: the sequence headers, then
// every sample.
func (f fixture) demux(t testing.TB) []*flv.Tag {
	t.Helper()
	var d Demuxer
	tags, err := d.Init(f.init)
	if err != nil {
		t.Fatal(err)
	}
	for i, seg := range f.segments {
		err := d.Segment(seg, func(tag *flv.Tag) error {
			tags = append(tags, tag.Clone())
			return nil
		})
		if err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
	}
	return tags
}

// memFile is an in-memory file with WriteAt, for the writers.
type memFile struct{ bytes.Buffer }

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > int64(m.Len()) {
		return 0, fmt.Errorf("WriteAt past the end")
	}
	copy(m.Bytes()[off:], p)
	return len(p), nil
}

// sinkTo is a flv.Sink writing every tag into one writer.
type sinkTo struct {
	w interface{ WriteTag(*flv.Tag) error }
}

func (s sinkTo) WriteTag(t *flv.Tag) error        { return s.w.WriteTag(t) }
func (s sinkTo) NextFile(r flv.SplitReason) error { return fmt.Errorf("unexpected split: %v", r) }

// writeMP4 writes tags through a FileWriter, through the Repairer first if
// repair is set, and returns the file and its stats.
func writeMP4(t testing.TB, tags []*flv.Tag, repair bool) ([]byte, flv.FileStats) {
	t.Helper()
	var file memFile
	w := NewFileWriter(&file, &file)
	if err := w.WriteHeader(); err != nil {
		t.Fatal(err)
	}
	feed := w.WriteTag
	if repair {
		rep := flv.NewRepairer(sinkTo{w}, flv.RepairOptions{})
		rep.StreamRestarted()
		feed = rep.Feed
	}
	for _, tag := range tags {
		if err := feed(tag); err != nil {
			t.Fatal(err)
		}
	}
	st, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if st.Size != int64(file.Len()) || w.Written() != st.Size || w.Complete() != st.Size {
		t.Fatalf("stats size %d, written %d, complete %d, file %d", st.Size, w.Written(), w.Complete(), file.Len())
	}
	return file.Bytes(), st
}

// probe is what ffprobe says about a file.
type probe struct {
	Streams []struct {
		Index     int    `json:"index"`
		CodecName string `json:"codec_name"`
		CodecType string `json:"codec_type"`
		Packets   string `json:"nb_read_packets"`
	} `json:"streams"`
	Packets []struct {
		Stream int    `json:"stream_index"`
		DTS    string `json:"dts_time"`
		PTS    string `json:"pts_time"`
		Flags  string `json:"flags"`
		Size   string `json:"size"`
	} `json:"packets"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

func (p probe) duration(t testing.TB) float64 {
	d, err := strconv.ParseFloat(p.Format.Duration, 64)
	if err != nil {
		t.Fatalf("ffprobe duration %q: %v", p.Format.Duration, err)
	}
	return d
}

// count returns the packets of the stream of the given type.
func (p probe) count(t testing.TB, codecType string) int {
	for _, s := range p.Streams {
		if s.CodecType == codecType {
			n, err := strconv.Atoi(s.Packets)
			if err != nil {
				t.Fatalf("ffprobe packet count %q: %v", s.Packets, err)
			}
			return n
		}
	}
	return 0
}

// ffprobe runs ffprobe on data, failing the test on anything it prints as
// an error, and skips the test where ffprobe is not installed.
func ffprobe(t testing.TB, data []byte, ext string) probe {
	t.Helper()
	bin, err := exec.LookPath("ffprobe")
	if err != nil {
		t.Skip("ffprobe not installed")
	}
	path := filepath.Join(t.TempDir(), "probe"+ext)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-v", "error", "-count_packets",
		"-show_entries", "stream=index,codec_name,codec_type,nb_read_packets:format=duration:packet=stream_index,dts_time,pts_time,flags,size",
		"-of", "json", path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffprobe: %v: %s", err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Fatalf("ffprobe reports errors:\n%s", stderr.String())
	}
	var p probe
	if err := json.Unmarshal(stdout.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkMonotonic fails if any stream's DTS goes back.
func (p probe) checkMonotonic(t testing.TB) {
	t.Helper()
	last := map[int]float64{}
	for i, pk := range p.Packets {
		dts, err := strconv.ParseFloat(pk.DTS, 64)
		if err != nil {
			t.Fatalf("packet %d: dts %q", i, pk.DTS)
		}
		if prev, ok := last[pk.Stream]; ok && dts < prev {
			t.Fatalf("packet %d of stream %d: dts %v after %v", i, pk.Stream, dts, prev)
		}
		last[pk.Stream] = dts
	}
}
