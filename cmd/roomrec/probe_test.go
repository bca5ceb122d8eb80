package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// probed is what ffprobe read from a recorded file.
type probed struct {
	Codecs   []string      // codec names, one per stream, in stream order
	Duration time.Duration // the container's duration
	Packets  int
}

// probeClean runs ffprobe over a whole file, every packet read, and fails
// the test if ffprobe says anything at all on stderr (a torn fragment, a
// bad NAL, a broken box) or if any stream's timestamps go back. It returns
// false, checking nothing, when ffprobe is not installed.
func probeClean(t *testing.T, path string) (probed, bool) {
	t.Helper()
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Logf("ffprobe not installed; %s not probed", filepath.Base(path))
		return probed{}, false
	}
	var p probed
	var stderr bytes.Buffer
	cmd := exec.Command("ffprobe", "-v", "error", "-show_entries", "packet=stream_index,dts_time", "-of", "csv=p=0", path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Errorf("ffprobe of %s: %v\n%s", filepath.Base(path), err, stderr.String())
	}
	last := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		stream, dtsText, _ := strings.Cut(line, ",")
		dts, err := strconv.ParseFloat(dtsText, 64)
		if err != nil {
			continue // N/A: no timestamp to order
		}
		if prev, ok := last[stream]; ok && dts < prev {
			t.Errorf("%s: stream %s goes back from %.3f s to %.3f s", filepath.Base(path), stream, prev, dts)
		}
		last[stream] = dts
		p.Packets++
	}
	stderr.Reset()
	cmd = exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_name:format=duration", "-of", "default=nw=1", path)
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Errorf("ffprobe of %s: %v\n%s", filepath.Base(path), err, stderr.String())
	}
	for _, line := range strings.Split(string(out), "\n") {
		key, value, _ := strings.Cut(line, "=")
		switch key {
		case "codec_name":
			p.Codecs = append(p.Codecs, value)
		case "duration":
			if s, err := strconv.ParseFloat(value, 64); err == nil {
				p.Duration = time.Duration(s * float64(time.Second))
			}
		}
	}
	if p.Packets == 0 {
		t.Errorf("%s: ffprobe read no packets", filepath.Base(path))
	}
	return p, true
}

// sortedCodecs returns the codec names in order, so "hevc,aac" and
// "aac,hevc" compare equal.
func (p probed) sortedCodecs() string {
	c := append([]string(nil), p.Codecs...)
	sort.Strings(c)
	return strings.Join(c, ",")
}

// fragmentEnds walks the top-level boxes of a fragmented MP4 file and
// returns the offset just past each whole moof+mdat pair, and the file's
// size. It reads box headers only, independently of recording/mp4, so a
// test of that package's crash repair does not take its word for where
// fragments end.
func fragmentEnds(t *testing.T, path string) ([]int64, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	size := info.Size()
	var ends []int64
	prev := ""
	for pos := int64(0); pos+8 <= size; {
		var hdr [16]byte
		if _, err := f.ReadAt(hdr[:8], pos); err != nil {
			t.Fatal(err)
		}
		boxSize, typ := int64(binary.BigEndian.Uint32(hdr[:4])), string(hdr[4:8])
		if boxSize == 1 { // a 64-bit size follows the type
			if _, err := f.ReadAt(hdr[8:16], pos+8); err != nil && err != io.EOF {
				t.Fatal(err)
			}
			boxSize = int64(binary.BigEndian.Uint64(hdr[8:16]))
		}
		if boxSize < 8 || pos+boxSize > size {
			break // torn: this box does not fit in the file
		}
		pos += boxSize
		if typ == "mdat" && prev == "moof" {
			ends = append(ends, pos)
		}
		prev = typ
	}
	return ends, size
}
