package flv

import (
	"bytes"
	"io"
	"testing"
)

// discardFile is a file that keeps nothing, so the benchmark measures the
// pipeline, not the disk.
type discardFile struct{}

func (discardFile) Write(p []byte) (int, error)            { return len(p), nil }
func (discardFile) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

type benchSink struct{ w *FileWriter }

func (s *benchSink) WriteTag(t *Tag) error      { return s.w.WriteTag(t) }
func (s *benchSink) NextFile(SplitReason) error { return nil }

// BenchmarkRepairPipeline pushes a looped stream through the whole path a
// recording takes in memory: Reader → Repairer → FileWriter. Target: at
// least 500 MB/s, no allocations per tag.
func BenchmarkRepairPipeline(b *testing.B) {
	s := loadSample(b, "sample_a.flv")
	// One minute of stream: the sample looped with rising timestamps.
	var stream bytes.Buffer
	w := NewWriter(&stream)
	w.WriteHeader(FlagAudio | FlagVideo)
	for _, tag := range []*Tag{s.script, s.video, s.audio} {
		w.WriteTag(tag)
	}
	for loop := range int64(10) {
		for _, f := range s.frames {
			c := *f
			c.Timestamp += loop * 6100
			w.WriteTag(&c)
		}
	}
	data := stream.Bytes()
	fw := NewFileWriter(discardFile{}, discardFile{})
	fw.WriteHeader()
	rep := NewRepairer(&benchSink{fw}, RepairOptions{})
	rep.StreamRestarted()
	src := bytes.NewReader(data)
	r := NewReader(src)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(data)
		if _, err := r.ReadHeader(); err != nil {
			b.Fatal(err)
		}
		// Each pass restarts the clock, which the repairer rebases like any
		// jump; it is not a new connection, so nothing is a replay.
		for {
			tag, err := r.ReadTag()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if err := rep.Feed(tag); err != nil {
				b.Fatal(err)
			}
		}
	}
}
