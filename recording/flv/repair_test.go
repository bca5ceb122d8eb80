package flv

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sampleTags reads a simulator sample: its sequence headers, its script tag
// and its frames, all owned copies.
type sampleTags struct {
	script, video, audio *Tag
	eos                  *Tag // the encoder's end-of-sequence marker
	frames               []*Tag
}

func loadSample(t testing.TB, name string) sampleTags {
	t.Helper()
	r := NewReader(bytes.NewReader(readSampleFile(t, name)))
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	var s sampleTags
	for {
		tag, err := r.ReadTag()
		if err != nil {
			break
		}
		tag = tag.Clone()
		switch {
		case tag.Type == TagScript:
			s.script = tag
		case tag.IsSequenceHeader() && tag.Type == TagVideo:
			s.video = tag
		case tag.IsSequenceHeader() && tag.Type == TagAudio:
			s.audio = tag
		case tag.IsEndOfSequence():
			s.eos = tag
		default:
			s.frames = append(s.frames, tag)
		}
	}
	return s
}

// connection returns the tags a CDN connection sends: script, headers, then
// frames [from, to) of the sample, their timestamps shifted by base, and the
// end-of-sequence marker if the connection reaches the sample's end.
func (s sampleTags) connection(from, to int, base int64) []*Tag {
	out := []*Tag{s.script, s.video, s.audio}
	for _, f := range s.frames[from:to] {
		c := f.Clone()
		c.Timestamp += base
		out = append(out, c)
	}
	if to == len(s.frames) && s.eos != nil {
		c := s.eos.Clone()
		c.Timestamp += base
		out = append(out, c)
	}
	return out
}

// playable is how many frames a file made from the whole sample holds: a
// file starts at a keyframe, so frames before the first one are dropped.
func (s sampleTags) playable() int {
	for i, f := range s.frames {
		if f.IsKeyframe() {
			return len(s.frames) - i
		}
	}
	return 0
}

func (s sampleTags) keyframes() int {
	n := 0
	for _, f := range s.frames {
		if f.IsKeyframe() {
			n++
		}
	}
	return n
}

// keyframeIndex returns the index of the n-th keyframe among frames.
func (s sampleTags) keyframeIndex(t testing.TB, n int) int {
	seen := 0
	for i, f := range s.frames {
		if f.IsKeyframe() {
			if seen == n {
				return i
			}
			seen++
		}
	}
	t.Fatalf("sample has fewer than %d keyframes", n+1)
	return 0
}

// memFile is an in-memory file with WriteAt, for the FileWriter.
type memFile struct{ bytes.Buffer }

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	copy(m.Bytes()[off:], p)
	return len(p), nil
}

// fileSink collects each file the Repairer produces.
type fileSink struct {
	files   []*memFile
	reasons []SplitReason
	cur     *FileWriter
	stats   []FileStats
}

func (s *fileSink) WriteTag(t *Tag) error {
	if s.cur == nil {
		f := &memFile{}
		s.files = append(s.files, f)
		s.cur = NewFileWriter(f, f)
		if err := s.cur.WriteHeader(); err != nil {
			return err
		}
	}
	return s.cur.WriteTag(t)
}

func (s *fileSink) NextFile(reason SplitReason) error {
	s.reasons = append(s.reasons, reason)
	return s.finish()
}

func (s *fileSink) finish() error {
	if s.cur == nil {
		return nil
	}
	st, err := s.cur.Finish()
	s.stats = append(s.stats, st)
	s.cur = nil
	return err
}

// repair feeds connections of tags through a Repairer and returns the sink.
func repair(t testing.TB, opts RepairOptions, conns ...[]*Tag) *fileSink {
	t.Helper()
	sink := &fileSink{}
	r := NewRepairer(sink, opts)
	for _, conn := range conns {
		r.StreamRestarted()
		for _, tag := range conn {
			if err := r.Feed(tag); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := sink.finish(); err != nil {
		t.Fatal(err)
	}
	return sink
}

// probed is what ffprobe says about a file.
type probed struct {
	duration time.Duration
	packets  map[string][]float64 // dts by stream index
	width    string
}

// ffprobe checks a file decodes without complaint and that no stream's
// timestamps go back.
func ffprobe(t testing.TB, data []byte) probed {
	t.Helper()
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Skip("ffprobe not installed")
	}
	path := filepath.Join(t.TempDir(), "out.flv")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd := exec.Command("ffprobe", "-v", "error", "-show_entries", "packet=stream_index,dts_time:stream=width", "-of", "csv=p=0", path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("ffprobe: %v\n%s", err, stderr.String())
	}
	p := probed{packets: map[string][]float64{}}
	end := 0.0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, ",")
		if len(f) == 1 {
			if f[0] != "" {
				p.width = f[0]
			}
			continue
		}
		dts, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		list := p.packets[f[0]]
		if n := len(list); n > 0 && dts < list[n-1] {
			t.Errorf("stream %s dts goes back: %.3f after %.3f", f[0], dts, list[n-1])
		}
		p.packets[f[0]] = append(list, dts)
		end = max(end, dts)
	}
	p.duration = time.Duration(end * float64(time.Second))
	return p
}

func TestRepairCleanStream(t *testing.T) {
	s := loadSample(t, "sample_a.flv")
	sink := repair(t, RepairOptions{}, s.connection(0, len(s.frames), 123456))
	if len(sink.files) != 1 {
		t.Fatalf("%d files, want 1", len(sink.files))
	}
	p := ffprobe(t, sink.files[0].Bytes())
	if p.packets["0"][0] != 0 {
		t.Errorf("first video dts = %.3f, want 0", p.packets["0"][0])
	}
	if d := p.duration; d < 5800*time.Millisecond || d > 6100*time.Millisecond {
		t.Errorf("duration %s, want the sample's 6 s", d)
	}
	if got, want := len(p.packets["0"])+len(p.packets["1"]), s.playable(); got != want {
		t.Errorf("%d packets, want %d", got, want)
	}
	if d := sink.stats[0].Duration; (d - p.duration).Abs() > 100*time.Millisecond {
		t.Errorf("FileStats duration %s, ffprobe %s", d, p.duration)
	}
}

func TestRepairReconnect(t *testing.T) {
	s := loadSample(t, "sample_a.flv")
	k2, k3 := s.keyframeIndex(t, 2), s.keyframeIndex(t, 3)
	cut := k3 + 10 // the first connection breaks 10 frames after the 4th keyframe
	tests := []struct {
		name       string
		secondBase int64
		resumeAt   int
	}{
		{"replay of the last GOP, same clock", 5000, k3},
		{"replay from an older keyframe, same clock", 5000, k2},
		{"replay with a new clock", 900000, k3},
		{"no overlap, new clock", 900000, cut},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := repair(t, RepairOptions{},
				s.connection(0, cut, 5000),
				s.connection(tt.resumeAt, len(s.frames), tt.secondBase))
			if len(sink.files) != 1 {
				t.Fatalf("%d files, want 1", len(sink.files))
			}
			p := ffprobe(t, sink.files[0].Bytes())
			if got, want := len(p.packets["0"])+len(p.packets["1"]), s.playable(); got != want {
				t.Errorf("%d packets, want %d: the replay was not dropped exactly", got, want)
			}
			// Continuous: no gap between video frames over 100 ms.
			v := p.packets["0"]
			for i := 1; i < len(v); i++ {
				if v[i]-v[i-1] > 0.1 {
					t.Errorf("gap of %.3f s at video frame %d", v[i]-v[i-1], i)
				}
			}
		})
	}
}

func TestRepairTimestampJumps(t *testing.T) {
	s := loadSample(t, "sample_a.flv")
	for _, jump := range []int64{10000, -3000, -60000} {
		t.Run(strconv.FormatInt(jump, 10), func(t *testing.T) {
			conn := s.connection(0, len(s.frames), 70000)
			half := 3 + len(s.frames)/2
			for _, tag := range conn[half:] {
				tag.Timestamp += jump
			}
			sink := repair(t, RepairOptions{}, conn)
			p := ffprobe(t, sink.files[0].Bytes())
			if d := p.duration; d < 5800*time.Millisecond || d > 6200*time.Millisecond {
				t.Errorf("duration %s after a %d ms jump, want the 6 s that were streamed", d, jump)
			}
		})
	}
}

func TestRepairCodecChangeSplits(t *testing.T) {
	a, b := loadSample(t, "sample_a.flv"), loadSample(t, "sample_b.flv")
	second := b.connection(0, len(b.frames), 20000)
	// The same stream, new sequence headers mid-way: no new connection.
	stream := append(a.connection(0, len(a.frames), 14000), second[1:]...)
	sink := repair(t, RepairOptions{}, stream)
	if len(sink.files) != 2 || sink.reasons[0] != SplitCodecChange {
		t.Fatalf("%d files (reasons %v), want 2 split by codec change", len(sink.files), sink.reasons)
	}
	for i, want := range []string{"320", "480"} {
		p := ffprobe(t, sink.files[i].Bytes())
		if p.width != want {
			t.Errorf("file %d is %s wide, want %s", i, p.width, want)
		}
		if p.packets["0"][0] != 0 {
			t.Errorf("file %d starts at %.3f, want 0", i, p.packets["0"][0])
		}
	}
}

func TestRepairIdenticalHeadersAndMetadataRepeated(t *testing.T) {
	s := loadSample(t, "sample_a.flv")
	conn := s.connection(0, len(s.frames), 0)
	// An end-of-sequence marker, headers and onMetaData again mid-stream,
	// as an encoder restart through a CDN sends them.
	mid := 3 + s.keyframeIndex(t, 3)
	stream := append(append(append([]*Tag{}, conn[:mid]...), s.eos, s.script, s.video, s.audio, s.script), conn[mid:]...)
	sink := repair(t, RepairOptions{}, stream)
	if len(sink.files) != 1 {
		t.Fatalf("%d files, want 1: identical headers must not split", len(sink.files))
	}
	if n := countTags(t, sink.files[0].Bytes(), TagScript); n != 1 {
		t.Errorf("%d onMetaData tags, want only the writer's own", n)
	}
	ffprobe(t, sink.files[0].Bytes())
}

func TestRepairLateAudioHeader(t *testing.T) {
	s := loadSample(t, "sample_a.flv")
	conn := s.connection(0, len(s.frames), 0)
	// The audio header arrives after a second of video; audio frames
	// before it cannot be decoded.
	late := 3 + s.keyframeIndex(t, 1)
	var stream []*Tag
	stream = append(stream, conn[0], conn[1])
	for i, tag := range conn[3:] {
		if i+3 == late {
			stream = append(stream, s.audio)
		}
		stream = append(stream, tag)
	}
	sink := repair(t, RepairOptions{}, stream)
	if len(sink.files) != 2 {
		t.Fatalf("%d files, want a video-only head and a file with both streams", len(sink.files))
	}
	p := ffprobe(t, sink.files[1].Bytes())
	if len(p.packets) != 2 {
		t.Errorf("second file has %d streams, want audio and video", len(p.packets))
	}
}

func TestRepairSplitsOnKeyframes(t *testing.T) {
	s := loadSample(t, "sample_a.flv")
	tests := []struct {
		name   string
		opts   RepairOptions
		reason SplitReason
	}{
		{"size", RepairOptions{MaxFileBytes: 40 << 10}, SplitSize},
		{"duration", RepairOptions{MaxFileDuration: 2 * time.Second}, SplitDuration},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := repair(t, tt.opts, s.connection(0, len(s.frames), 1000))
			if len(sink.files) < 2 {
				t.Fatalf("%d files, want splits", len(sink.files))
			}
			var total int
			for i, f := range sink.files {
				p := ffprobe(t, f.Bytes())
				total += len(p.packets["0"]) + len(p.packets["1"])
				if i < len(sink.reasons) && sink.reasons[i] != tt.reason {
					t.Errorf("split %d reason %s, want %s", i, sink.reasons[i], tt.reason)
				}
				if first := firstVideo(t, f.Bytes()); !first.IsKeyframe() {
					t.Errorf("file %d does not start with a keyframe", i)
				}
			}
			if total != s.playable() {
				t.Errorf("%d packets across files, want %d: frames lost or repeated at a split", total, s.playable())
			}
		})
	}
}

func TestFileWriterMetadata(t *testing.T) {
	s := loadSample(t, "sample_a.flv")
	sink := repair(t, RepairOptions{}, s.connection(0, len(s.frames), 0))
	data := sink.files[0].Bytes()
	if int64(len(data)) != sink.stats[0].Size {
		t.Errorf("file is %d bytes, stats say %d", len(data), sink.stats[0].Size)
	}
	r := NewReader(bytes.NewReader(data))
	r.ReadHeader()
	tag, err := r.ReadTag()
	if err != nil || tag.Type != TagScript {
		t.Fatalf("first tag %v, %v, want onMetaData", tag, err)
	}
	name, rest, err := DecodeAMF(tag.Data)
	if err != nil || name != "onMetaData" {
		t.Fatalf("script name %v, %v", name, err)
	}
	v, _, err := DecodeAMF(rest)
	if err != nil {
		t.Fatal(err)
	}
	props := v.([]Property)
	duration, _ := Lookup(props, "duration")
	if d := duration.(float64); d < 5.8 || d > 6.1 {
		t.Errorf("duration %v, want about 6", d)
	}
	size, _ := Lookup(props, "filesize")
	if size.(float64) != float64(len(data)) {
		t.Errorf("filesize %v, want %d", size, len(data))
	}
	kf, _ := Lookup(props, "keyframes")
	times, _ := Lookup(kf.([]Property), "times")
	pos, _ := Lookup(kf.([]Property), "filepositions")
	if n, want := len(times.([]any)), s.keyframes(); n != want || len(pos.([]any)) != want {
		t.Fatalf("%d keyframes indexed, want %d", n, want)
	}
	// Every indexed position is a keyframe tag.
	for i, p := range pos.([]any) {
		r := NewReader(bytes.NewReader(data[int(p.(float64)):]))
		tag, err := r.ReadTag()
		if err != nil || !tag.IsKeyframe() {
			t.Errorf("keyframe %d at %v is not a keyframe tag", i, p)
		}
	}
}

func TestFileWriterShortWriteKeepsWholeTags(t *testing.T) {
	s := loadSample(t, "sample_a.flv")
	var disk limitedWriter
	disk.limit = 60 << 10
	w := NewFileWriter(&disk, nil)
	if err := w.WriteHeader(); err != nil {
		t.Fatal(err)
	}
	var err error
	w.WriteTag(s.video)
	w.WriteTag(s.audio)
	for _, f := range s.frames {
		if err = w.WriteTag(f); err != nil {
			break
		}
	}
	if err == nil {
		_, err = w.Finish()
	}
	if err == nil {
		t.Fatal("no error from a full disk")
	}
	whole := disk.Bytes()[:w.Complete()]
	if w.Complete() >= int64(disk.Len()) && disk.Len() == int(disk.limit) {
		t.Errorf("Complete %d is not before the torn end at %d", w.Complete(), disk.Len())
	}
	ffprobe(t, whole)
}

// Tags wait in the buffer until a second of media or 128 KiB has
// collected, or until Flush.
func TestFileWriterFlush(t *testing.T) {
	s := loadSample(t, "sample_a.flv")
	var disk bytes.Buffer
	w := NewFileWriter(&disk, nil)
	if err := w.WriteHeader(); err != nil {
		t.Fatal(err)
	}
	header := disk.Len()
	for _, tag := range []*Tag{s.video, s.audio, s.frames[0], s.frames[1]} {
		if err := w.WriteTag(tag); err != nil {
			t.Fatal(err)
		}
	}
	if disk.Len() != header {
		t.Fatalf("%d bytes written before Flush, want the %d of the header", disk.Len(), header)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if int64(disk.Len()) != w.Written() || w.Complete() != w.Written() {
		t.Errorf("after Flush: %d bytes written, Written %d, Complete %d; want all three equal", disk.Len(), w.Written(), w.Complete())
	}
	if err := w.Flush(); err != nil || int64(disk.Len()) != w.Written() {
		t.Errorf("a second Flush: %v, %d bytes", err, disk.Len())
	}
}

// limitedWriter accepts limit bytes, then writes what fits and fails.
type limitedWriter struct {
	bytes.Buffer
	limit int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	room := l.limit - l.Len()
	if len(p) <= room {
		return l.Buffer.Write(p)
	}
	l.Buffer.Write(p[:room])
	return room, os.ErrDeadlineExceeded
}

func countTags(t testing.TB, data []byte, typ TagType) int {
	r := NewReader(bytes.NewReader(data))
	r.ReadHeader()
	n := 0
	for {
		tag, err := r.ReadTag()
		if err != nil {
			return n
		}
		if tag.Type == typ {
			n++
		}
	}
}

func firstVideo(t testing.TB, data []byte) *Tag {
	r := NewReader(bytes.NewReader(data))
	r.ReadHeader()
	for {
		tag, err := r.ReadTag()
		if err != nil {
			t.Fatal("no video frame")
		}
		if tag.Type == TagVideo && !tag.IsSequenceHeader() {
			return tag.Clone()
		}
	}
}

func TestScanCompleteFindsLastWholeTag(t *testing.T) {
	s := loadSample(t, "sample_a.flv")
	sink := repair(t, RepairOptions{}, s.connection(0, len(s.frames), 0))
	whole := sink.files[0].Bytes()
	// Cut inside the metadata, nothing but the header is whole.
	if end, _, err := ScanComplete(bytes.NewReader(whole[:5000]), 5000); err != nil || end != HeaderLen+4 {
		t.Errorf("cut inside the metadata: end %d, %v, want %d", end, err, HeaderLen+4)
	}
	for _, cut := range []int{len(whole), len(whole) - 1, len(whole) - 3, len(whole) / 2} {
		data := whole[:cut]
		end, lastTS, err := ScanComplete(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		if cut == len(whole) && end != int64(cut) {
			t.Errorf("whole file: end %d, want %d", end, cut)
		}
		if end > int64(cut) || int64(cut)-end > 64<<10 {
			t.Errorf("cut at %d: end %d", cut, end)
		}
		p := ffprobe(t, data[:end])
		if got := time.Duration(lastTS) * time.Millisecond; (got - p.duration).Abs() > 100*time.Millisecond {
			t.Errorf("cut at %d: last timestamp %s, ffprobe %s", cut, got, p.duration)
		}
	}
	if _, _, err := ScanComplete(bytes.NewReader([]byte("not flv")), 7); err == nil {
		t.Error("ScanComplete accepted a file that is not FLV")
	}
}
