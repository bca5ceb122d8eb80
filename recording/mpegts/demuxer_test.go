package mpegts

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"

	"roomrec/recording/flv"
)

// The fixtures in testdata are made by testdata/make-fixtures.sh with
// ffmpeg alone.

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// demux feeds the segments to one Demuxer and returns owned copies of the
// tags.
func demux(t testing.TB, segments ...[]byte) ([]*flv.Tag, Stats) {
	t.Helper()
	d := NewDemuxer()
	var tags []*flv.Tag
	for i, seg := range segments {
		err := d.Segment(bytes.NewReader(seg), func(tag *flv.Tag) error {
			tags = append(tags, tag.Clone())
			return nil
		})
		if err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
	}
	return tags, d.Stats()
}

func fixtures(t testing.TB, names ...string) [][]byte {
	var out [][]byte
	for _, n := range names {
		out = append(out, readFixture(t, n))
	}
	return out
}

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed", name)
	}
	return p
}

// writeFLV writes tags through the FileWriter recordings use.
func writeFLV(t *testing.T, tags []*flv.Tag) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out.flv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := flv.NewFileWriter(f, f)
	if err := w.WriteHeader(); err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags {
		if err := w.WriteTag(tag); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	return path
}

type probePacket struct {
	video    bool
	dts, pts float64
	key      bool
}

// probe lists the packets ffprobe finds in a file, and what it says on
// stderr.
func probe(t *testing.T, path string) ([]probePacket, string) {
	t.Helper()
	cmd := exec.Command(needTool(t, "ffprobe"), "-v", "error", "-show_entries",
		"packet=codec_type,dts_time,pts_time,flags", "-of", "csv=p=0", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, stderr.String())
	}
	var pkts []probePacket
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, ",")
		if len(f) < 4 {
			continue
		}
		pts, _ := strconv.ParseFloat(f[1], 64)
		dts, _ := strconv.ParseFloat(f[2], 64)
		pkts = append(pkts, probePacket{video: f[0] == "video", pts: pts, dts: dts, key: strings.HasPrefix(f[3], "K")})
	}
	return pkts, stderr.String()
}

func probeDuration(t *testing.T, path string) float64 {
	t.Helper()
	out, err := exec.Command(needTool(t, "ffprobe"), "-v", "error", "-show_entries", "format=duration",
		"-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	d, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		t.Fatalf("ffprobe duration %q: %v", out, err)
	}
	return d
}

// decodeErrors decodes every frame of a file with ffmpeg and returns what
// it complains about.
func decodeErrors(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(needTool(t, "ffmpeg"), append(append([]string{"-v", "error"}, args...), "-f", "null", "-")...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%v: %s", err, out)
	}
	return string(out)
}

func countPackets(pkts []probePacket) (video, audio int) {
	for _, p := range pkts {
		if p.video {
			video++
		} else {
			audio++
		}
	}
	return video, audio
}

// TestH264SegmentsPlay demuxes ffmpeg's H.264 HLS segments, writes the
// tags as an FLV file and checks it with ffprobe and ffmpeg against the
// segments themselves.
func TestH264SegmentsPlay(t *testing.T) {
	segs := fixtures(t, "h264_0.ts", "h264_1.ts", "h264_2.ts")
	tags, st := demux(t, segs...)
	path := writeFLV(t, tags)

	input := filepath.Join(t.TempDir(), "all.ts")
	if err := os.WriteFile(input, bytes.Join(segs, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	inPkts, _ := probe(t, input)
	outPkts, stderr := probe(t, path)
	if stderr != "" {
		t.Errorf("ffprobe complains about the FLV:\n%s", stderr)
	}
	if msg := decodeErrors(t, "-i", path); msg != "" {
		t.Errorf("ffmpeg cannot decode the FLV cleanly:\n%s", msg)
	}
	inV, inA := countPackets(inPkts)
	outV, outA := countPackets(outPkts)
	if outV != inV || outA != inA {
		t.Errorf("FLV has %d video and %d audio packets, the segments %d and %d", outV, outA, inV, inA)
	}
	if st.VideoFrames != inV || st.AudioFrames != inA || st.SequenceHeaders != 2 || st.NoParameterSets != 0 || st.Jumps != 0 {
		t.Errorf("stats = %+v", st)
	}
	last := map[bool]float64{true: -1, false: -1}
	var keys []float64
	for _, p := range outPkts {
		if p.dts < last[p.video] {
			t.Errorf("%s dts goes back: %.3f after %.3f", map[bool]string{true: "video", false: "audio"}[p.video], p.dts, last[p.video])
		}
		last[p.video] = p.dts
		if p.video && p.key {
			keys = append(keys, p.dts)
		}
	}
	if len(keys) != 3 {
		t.Errorf("keyframes at %v, want 3, a second apart", keys)
	}
	for i, k := range keys {
		if d := k - keys[0] - float64(i); d < -0.002 || d > 0.002 {
			t.Errorf("keyframe %d at %.3f s, want %d s after the first", i, k, i)
		}
	}
	// Presentation times survive: every frame's PTS and DTS are the
	// input's, each rounded down to the millisecond.
	floorMS := func(sec float64) int { return int(math.Floor(sec*1000 + 1e-6)) }
	var inCTS, outCTS []int
	for _, p := range inPkts {
		if p.video {
			inCTS = append(inCTS, floorMS(p.pts)-floorMS(p.dts))
		}
	}
	for _, p := range outPkts {
		if p.video {
			outCTS = append(outCTS, floorMS(p.pts)-floorMS(p.dts))
		}
	}
	if fmt.Sprint(inCTS) != fmt.Sprint(outCTS) {
		t.Errorf("composition offsets differ:\n in %v\nout %v", inCTS, outCTS)
	}
	inDur, outDur := probeDuration(t, input), probeDuration(t, path)
	if outDur < inDur-0.2 || outDur > inDur+0.2 {
		t.Errorf("FLV lasts %.3f s, the segments %.3f s", outDur, inDur)
	}
	if tags[0].Timestamp != 0 {
		t.Errorf("first tag at %d ms, want 0", tags[0].Timestamp)
	}
}

// TestAVCConfigMatchesFFmpeg compares the sequence header with the one
// ffmpeg's own FLV muxer writes for the same segment.
func TestAVCConfigMatchesFFmpeg(t *testing.T) {
	ffmpeg := needTool(t, "ffmpeg")
	seg := readFixture(t, "h264_0.ts")
	ref, err := exec.Command(ffmpeg, "-v", "error", "-i", filepath.Join("testdata", "h264_0.ts"),
		"-map", "0:v", "-c", "copy", "-f", "flv", "-").Output()
	if err != nil {
		t.Fatal(err)
	}
	r := flv.NewReader(bytes.NewReader(ref))
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	var want []byte
	for {
		tag, err := r.ReadTag()
		if err != nil {
			t.Fatal("no sequence header in ffmpeg's FLV:", err)
		}
		if tag.Type == flv.TagVideo && tag.IsSequenceHeader() {
			want = append([]byte(nil), tag.Data...)
			break
		}
	}
	tags, _ := demux(t, seg)
	for _, tag := range tags {
		if tag.Type == flv.TagVideo && tag.IsSequenceHeader() {
			if !bytes.Equal(tag.Data, want) {
				t.Errorf("sequence header:\n got %x\nwant %x (ffmpeg)", tag.Data, want)
			}
			return
		}
	}
	t.Fatal("no video sequence header")
}

// hvcCArrays reads the NAL units of an HEVCDecoderConfigurationRecord by
// type.
func hvcCArrays(t *testing.T, rec []byte) map[h265.NALUType][]byte {
	t.Helper()
	if len(rec) < 23 {
		t.Fatalf("hvcC of %d bytes", len(rec))
	}
	out := map[h265.NALUType][]byte{}
	p := rec[23:]
	for range int(rec[22]) {
		if len(p) < 3 {
			t.Fatalf("hvcC cut short")
		}
		typ, n := h265.NALUType(p[0]&0x3f), int(binary.BigEndian.Uint16(p[1:]))
		p = p[3:]
		for range n {
			l := int(binary.BigEndian.Uint16(p))
			out[typ] = append([]byte(nil), p[2:2+l]...)
			p = p[2+l:]
		}
	}
	if len(p) != 0 {
		t.Errorf("%d bytes after the hvcC arrays", len(p))
	}
	return out
}

// TestHEVCSegments checks the HEVC tags: a parsable hvcC, a keyframe each
// second, every frame there; then decodes the video rebuilt as Annex-B from
// the tags alone (ffmpeg 5.1 cannot read HEVC in FLV).
func TestHEVCSegments(t *testing.T) {
	segs := fixtures(t, "hevc_0.ts", "hevc_1.ts", "hevc_2.ts")
	tags, st := demux(t, segs...)
	if st.SequenceHeaders != 2 || st.NoParameterSets != 0 {
		t.Errorf("stats = %+v", st)
	}
	first := tags[0]
	if first.Type != flv.TagVideo || first.Data[0] != 1<<4|codecHEVC || !first.IsSequenceHeader() {
		t.Fatalf("first tag = %v %x, want an HEVC sequence header", first.Type, first.Data[:min(8, len(first.Data))])
	}
	arrays := hvcCArrays(t, first.Data[5:])
	var sps h265.SPS
	if err := sps.Unmarshal(arrays[h265.NALUType_SPS_NUT]); err != nil {
		t.Fatalf("hvcC's SPS: %v", err)
	}
	if sps.Width() != 256 || sps.Height() != 144 {
		t.Errorf("SPS says %dx%d, want 256x144", sps.Width(), sps.Height())
	}
	if arrays[h265.NALUType_VPS_NUT] == nil || arrays[h265.NALUType_PPS_NUT] == nil {
		t.Errorf("hvcC lacks a VPS or PPS: %v", arrays)
	}
	rec := first.Data[5:]
	ptl := sps.ProfileTierLevel
	if got, want := [3]int{int(rec[1] >> 6), int(rec[1] >> 5 & 1), int(rec[1] & 0x1f)},
		[3]int{int(ptl.GeneralProfileSpace), int(ptl.GeneralTierFlag), int(ptl.GeneralProfileIdc)}; got != want {
		t.Errorf("hvcC profile space, tier, profile = %v, the SPS's %v", got, want)
	}
	if rec[12] != ptl.GeneralLevelIdc {
		t.Errorf("hvcC level %d, the SPS's %d", rec[12], ptl.GeneralLevelIdc)
	}

	var keys []int64
	var annexB bytes.Buffer
	startCode := []byte{0, 0, 0, 1}
	frames := 0
	for _, tag := range tags {
		if tag.Type != flv.TagVideo || tag.IsSequenceHeader() {
			continue
		}
		frames++
		if tag.Data[0]&0x0f != codecHEVC {
			t.Fatalf("video tag with codec %d", tag.Data[0]&0x0f)
		}
		if tag.IsKeyframe() {
			keys = append(keys, tag.Timestamp)
			for _, typ := range []h265.NALUType{h265.NALUType_VPS_NUT, h265.NALUType_SPS_NUT, h265.NALUType_PPS_NUT} {
				annexB.Write(startCode)
				annexB.Write(arrays[typ])
			}
		}
		for p := tag.Data[5:]; len(p) > 0; {
			n := int(binary.BigEndian.Uint32(p))
			annexB.Write(startCode)
			annexB.Write(p[4 : 4+n])
			p = p[4+n:]
		}
	}
	if fmt.Sprint(keys) != "[0 1000 2000]" {
		t.Errorf("keyframes at %v ms, want [0 1000 2000]", keys)
	}
	input := filepath.Join(t.TempDir(), "all.ts")
	if err := os.WriteFile(input, bytes.Join(segs, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	inPkts, _ := probe(t, input)
	inV, inA := countPackets(inPkts)
	if frames != inV || st.AudioFrames != inA {
		t.Errorf("%d video and %d audio frames, the segments have %d and %d", frames, st.AudioFrames, inV, inA)
	}
	raw := filepath.Join(t.TempDir(), "video.hevc")
	if err := os.WriteFile(raw, annexB.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if msg := decodeErrors(t, "-f", "hevc", "-i", raw); msg != "" {
		t.Errorf("ffmpeg cannot decode the video rebuilt from the tags:\n%s", msg)
	}
	out, err := exec.Command(needTool(t, "ffprobe"), "-v", "error", "-count_frames", "-show_entries",
		"stream=nb_read_frames", "-of", "csv=p=0", "-f", "hevc", raw).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != strconv.Itoa(inV) {
		t.Errorf("decoded %s frames, want %d", got, inV)
	}
}

// TestHEVCConfigAgreesWithFFmpeg compares the hvcC with the one ffmpeg's
// MP4 muxer writes for the same segment, field by field where ffmpeg's is
// not computed from more than the parameter sets say.
func TestHEVCConfigAgreesWithFFmpeg(t *testing.T) {
	ffmpeg := needTool(t, "ffmpeg")
	path := filepath.Join(t.TempDir(), "ref.mp4")
	if out, err := exec.Command(ffmpeg, "-v", "error", "-i", filepath.Join("testdata", "hevc_0.ts"),
		"-map", "0:v", "-c", "copy", "-tag:v", "hvc1", path).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	mp4, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(mp4, []byte("hvcC"))
	if i < 4 {
		t.Fatal("no hvcC box in ffmpeg's MP4")
	}
	want := mp4[i+4 : i-4+int(binary.BigEndian.Uint32(mp4[i-4:]))]
	tags, _ := demux(t, readFixture(t, "hevc_0.ts"))
	got := tags[0].Data[5:]
	if !bytes.Equal(got[:13], want[:13]) {
		t.Errorf("profile, tier and level:\n got %x\nwant %x", got[:13], want[:13])
	}
	for _, f := range []struct {
		name string
		at   int
		mask byte
	}{{"chroma format", 16, 0x03}, {"luma bit depth", 17, 0x07}, {"chroma bit depth", 18, 0x07},
		{"temporal layers, nesting, length size", 21, 0x3f}} {
		if got[f.at]&f.mask != want[f.at]&f.mask {
			t.Errorf("%s: got %x, want %x", f.name, got[f.at]&f.mask, want[f.at]&f.mask)
		}
	}
	g, w := hvcCArrays(t, got), hvcCArrays(t, want)
	for _, typ := range []h265.NALUType{h265.NALUType_VPS_NUT, h265.NALUType_SPS_NUT, h265.NALUType_PPS_NUT} {
		if !bytes.Equal(g[typ], w[typ]) {
			t.Errorf("%v differs from ffmpeg's", typ)
		}
	}
}

// TestParameterSetsOnlyInFirstSegment: the SPS and PPS of the first segment
// serve the segments after it, which have none. The noparams segments,
// remuxed one by one, also start their continuity counters again at 0, as
// Bilibili's do (ffmpeg's HLS muxer carries them on), and no frame is lost
// at the boundaries.
func TestParameterSetsOnlyInFirstSegment(t *testing.T) {
	segs := fixtures(t, "h264_0.ts", "noparams_1.ts", "noparams_2.ts")
	tags, st := demux(t, segs...)
	if st.VideoFrames != 90 || st.NoParameterSets != 0 || st.SequenceHeaders != 2 {
		t.Errorf("stats = %+v, want 90 frames, none dropped, one header each", st)
	}
	path := writeFLV(t, tags)
	if msg := decodeErrors(t, "-i", path); msg != "" {
		t.Errorf("ffmpeg cannot decode the FLV cleanly:\n%s", msg)
	}
	// The same as from the segments that do carry them, less the
	// parameter sets.
	full, _ := demux(t, fixtures(t, "h264_0.ts", "h264_1.ts", "h264_2.ts")...)
	if len(full) != len(tags) {
		t.Fatalf("%d tags, %d from the full segments", len(tags), len(full))
	}
	for i := range tags {
		if tags[i].Timestamp != full[i].Timestamp || tags[i].Type != full[i].Type {
			t.Fatalf("tag %d: %v at %d, from the full segments %v at %d", i, tags[i].Type, tags[i].Timestamp, full[i].Type, full[i].Timestamp)
		}
	}
}

// TestParameterSetsArriveLater: frames before the first SPS/PPS cannot be
// decoded and are dropped and counted; the header goes out with the first
// frame that can.
func TestParameterSetsArriveLater(t *testing.T) {
	tags, st := demux(t, fixtures(t, "noparams_1.ts", "h264_2.ts")...)
	if st.NoParameterSets != 30 || st.VideoFrames != 30 {
		t.Errorf("stats = %+v, want 30 frames dropped and 30 kept", st)
	}
	var firstVideo *flv.Tag
	for _, tag := range tags {
		if tag.Type == flv.TagVideo {
			firstVideo = tag
			break
		}
	}
	if firstVideo == nil || !firstVideo.IsSequenceHeader() {
		t.Fatalf("first video tag = %+v, want the sequence header", firstVideo)
	}
	if firstVideo.Timestamp < 900 || firstVideo.Timestamp > 1100 {
		t.Errorf("video starts at %d ms, want about a second after the audio", firstVideo.Timestamp)
	}
	if msg := decodeErrors(t, "-i", writeFLV(t, tags)); msg != "" {
		t.Errorf("ffmpeg cannot decode the FLV cleanly:\n%s", msg)
	}
}

// shiftTS returns a copy of a TS segment with every PES PTS and DTS moved
// by delta (mod 2^33). It is a test tool, independent of the demuxer: it
// only finds PES headers at the start of packets.
func shiftTS(t *testing.T, seg []byte, delta int64) []byte {
	t.Helper()
	out := append([]byte(nil), seg...)
	for i := 0; i+188 <= len(out); i += 188 {
		p := out[i : i+188]
		if p[0] != 0x47 || p[1]&0x40 == 0 {
			continue
		}
		off := 4
		if p[3]&0x20 != 0 {
			off += 1 + int(p[4])
		}
		pes := p[off:]
		if len(pes) < 19 || pes[0] != 0 || pes[1] != 0 || pes[2] != 1 || pes[3] < 0xc0 || pes[3] > 0xef {
			continue
		}
		flags := pes[7] >> 6
		if flags >= 2 {
			shiftTimestamp(pes[9:14], delta)
		}
		if flags == 3 {
			shiftTimestamp(pes[14:19], delta)
		}
	}
	return out
}

func shiftTimestamp(b []byte, delta int64) {
	v := int64(b[0]>>1&7)<<30 | int64(b[1])<<22 | int64(b[2]>>1)<<15 | int64(b[3])<<7 | int64(b[4]>>1)
	v = (v + delta) & (1<<33 - 1)
	b[0] = b[0]&0xf1 | byte(v>>29)&0x0e
	b[1] = byte(v >> 22)
	b[2] = byte(v>>14) | 1
	b[3] = byte(v >> 7)
	b[4] = byte(v<<1) | 1
}

func TestTimeline(t *testing.T) {
	h0, h1, h2 := readFixture(t, "h264_0.ts"), readFixture(t, "h264_1.ts"), readFixture(t, "h264_2.ts")
	ref, _ := demux(t, h0, h1, h2)
	// 126000 is the first segment's earliest timestamp; the shift puts it
	// half a second before the 33-bit clock wraps, and is a whole number
	// of milliseconds so that nothing rounds differently.
	wrap := int64(1<<33-45000-126000) / 90 * 90

	tests := []struct {
		name      string
		segs      [][]byte
		wantJumps int
		check     func(t *testing.T, tags []*flv.Tag)
	}{
		{
			name: "the 33-bit clock wraps inside a segment",
			segs: [][]byte{shiftTS(t, h0, wrap), shiftTS(t, h1, wrap), shiftTS(t, h2, wrap)},
			check: func(t *testing.T, tags []*flv.Tag) {
				for i := range tags {
					if tags[i].Timestamp != ref[i].Timestamp {
						t.Fatalf("tag %d at %d ms, %d without the wrap", i, tags[i].Timestamp, ref[i].Timestamp)
					}
				}
			},
		},
		{
			name:      "the stream loops: timestamps go back",
			segs:      [][]byte{h0, h1, h2, h0, h1},
			wantJumps: 1,
		},
		{
			name:      "a segment lost",
			segs:      [][]byte{h0, h2},
			wantJumps: 1,
		},
		{
			name:      "a far jump forward",
			segs:      [][]byte{h0, shiftTS(t, h1, 90000*3600)},
			wantJumps: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tags, st := demux(t, tt.segs...)
			if st.Jumps != tt.wantJumps {
				t.Errorf("jumps = %d, want %d", st.Jumps, tt.wantJumps)
			}
			// Every stream's time goes on, and the segments follow one
			// another without a gap or overlap of more than a frame or
			// two of audio.
			var last [2]int64
			for i, tag := range tags {
				s := 0
				if tag.Type == flv.TagVideo {
					s = 1
				}
				if tag.Timestamp < last[s] {
					t.Fatalf("tag %d (%v) at %d ms, after %d", i, tag.Type, tag.Timestamp, last[s])
				}
				if i > 0 && tag.Timestamp-tags[i-1].Timestamp > 100 {
					t.Errorf("tag %d at %d ms, %d ms after the one before", i, tag.Timestamp, tag.Timestamp-tags[i-1].Timestamp)
				}
				last[s] = tag.Timestamp
			}
			if tt.check != nil {
				tt.check(t, tags)
			}
		})
	}
}

func TestSegmentErrors(t *testing.T) {
	seg := readFixture(t, "h264_0.ts")
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrNoProgram},
		{"not TS", []byte(strings.Repeat("<html>403 Forbidden</html>", 100)), ErrNoProgram},
		{"cut before the PMT", seg[:188], ErrNoProgram},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := NewDemuxer().Segment(bytes.NewReader(tt.data), func(*flv.Tag) error { return nil })
			if !errors.Is(err, tt.want) {
				t.Errorf("Segment = %v, want %v", err, tt.want)
			}
		})
	}

	t.Run("emit fails", func(t *testing.T) {
		stop := errors.New("disk full")
		n := 0
		err := NewDemuxer().Segment(bytes.NewReader(seg), func(*flv.Tag) error {
			n++
			if n == 3 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || n != 3 {
			t.Errorf("Segment = %v after %d tags, want the emit error after 3", err, n)
		}
	})

	t.Run("reader fails mid-segment", func(t *testing.T) {
		broken := errors.New("connection reset")
		r := io.MultiReader(bytes.NewReader(seg[:len(seg)*3/4]), &failingReader{broken})
		n := 0
		err := NewDemuxer().Segment(r, func(*flv.Tag) error { n++; return nil })
		if !errors.Is(err, broken) || n == 0 {
			t.Errorf("Segment = %v after %d tags, want the read error after the tags before it", err, n)
		}
	})

	t.Run("cut mid-segment", func(t *testing.T) {
		d := NewDemuxer()
		n := 0
		if err := d.Segment(bytes.NewReader(seg[:len(seg)/2+77]), func(*flv.Tag) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		if n == 0 || d.Stats().VideoFrames >= 30 {
			t.Errorf("%d tags, %d video frames from half a segment", n, d.Stats().VideoFrames)
		}
	})
}

type failingReader struct{ err error }

func (r *failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestSigned33(t *testing.T) {
	for _, tt := range []struct{ in, want int64 }{
		{0, 0}, {90, 90}, {1<<33 - 90, -90}, {-90, -90}, {1 << 32, -(1 << 32)}, {1<<32 - 1, 1<<32 - 1},
	} {
		if got := signed33(tt.in); got != tt.want {
			t.Errorf("signed33(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
	for _, tt := range []struct{ in, want int64 }{{0, 0}, {89, 0}, {90, 1}, {-1, -1}, {-90, -1}, {-91, -2}} {
		if got := ms(tt.in); got != tt.want {
			t.Errorf("ms(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

// A stream starts with both codec configurations before any frame, as an
// FLV stream does, even though TS carries the audio configuration in the
// first audio frame, which comes after the first video frames: otherwise
// the recorder starts a file with video alone and splits at the audio.
func TestStreamStartsWithBothHeaders(t *testing.T) {
	tags, _ := demux(t, fixtures(t, "h264_0.ts", "h264_1.ts")...)
	if len(tags) < 3 {
		t.Fatalf("%d tags", len(tags))
	}
	if !tags[0].IsSequenceHeader() || tags[0].Type != flv.TagVideo || !tags[1].IsSequenceHeader() || tags[1].Type != flv.TagAudio {
		t.Errorf("stream starts %s(header %v), %s(header %v); want the video then the audio header",
			tags[0].Type, tags[0].IsSequenceHeader(), tags[1].Type, tags[1].IsSequenceHeader())
	}
	if !tags[2].IsKeyframe() {
		t.Error("the first frame is not a keyframe")
	}
	for i, tag := range tags[2:] {
		if tag.IsSequenceHeader() {
			t.Errorf("tag %d: another sequence header in a stream whose configuration never changes", i+2)
		}
	}
}

type fileSink struct{ w *flv.FileWriter }

func (s fileSink) WriteTag(t *flv.Tag) error      { return s.w.WriteTag(t) }
func (s fileSink) NextFile(flv.SplitReason) error { return errors.New("unexpected split") }

// TestThroughRepairer takes the tags the way a recording will: through
// flv.Repairer into a FileWriter, here for a stream that loops twice.
func TestThroughRepairer(t *testing.T) {
	segs := fixtures(t, "h264_0.ts", "h264_1.ts", "h264_2.ts")
	segs = append(segs, segs...)
	path := filepath.Join(t.TempDir(), "rec.flv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := flv.NewFileWriter(f, f)
	if err := w.WriteHeader(); err != nil {
		t.Fatal(err)
	}
	rep := flv.NewRepairer(fileSink{w}, flv.RepairOptions{})
	d := NewDemuxer()
	for _, seg := range segs {
		if err := d.Segment(bytes.NewReader(seg), rep.Feed); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if st := rep.Stats(); st.Dropped != 0 || st.Jumps != 0 || st.Splits != 0 {
		t.Errorf("repairer stats = %+v, want nothing to repair", st)
	}
	pkts, stderr := probe(t, path)
	if stderr != "" {
		t.Errorf("ffprobe complains:\n%s", stderr)
	}
	if v, a := countPackets(pkts); v != 180 || a != d.Stats().AudioFrames {
		t.Errorf("%d video and %d audio packets, want 180 and %d", v, a, d.Stats().AudioFrames)
	}
	if dur := probeDuration(t, path); dur < 5.8 || dur > 6.2 {
		t.Errorf("duration %.3f s, want 6", dur)
	}
	if msg := decodeErrors(t, "-i", path); msg != "" {
		t.Errorf("ffmpeg cannot decode it cleanly:\n%s", msg)
	}
}
