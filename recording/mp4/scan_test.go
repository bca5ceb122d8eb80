package mp4

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"roomrec/recording/flv"
)

// TestScanCompleteCuts cuts a written file at every fragment boundary and
// at random points inside fragments: the end found is the last boundary
// at or before the cut, and the prefix up to it plays clean with the
// duration found.
func TestScanCompleteCuts(t *testing.T) {
	for _, name := range fixtureNames {
		t.Run(name, func(t *testing.T) {
			file, st := writeMP4(t, loadFixture(t, name).demux(t), true)
			_, _, initEnd, err := parseInit(file)
			if err != nil {
				t.Fatal(err)
			}
			bounds := []int{}
			for _, pos := range fragmentStarts(t, file) {
				bounds = append(bounds, pos)
			}
			bounds = append(bounds, len(file))
			cuts := slices.Clone(bounds)
			rng := rand.New(rand.NewPCG(3, 4))
			for range 24 {
				cuts = append(cuts, initEnd+rng.IntN(len(file)-initEnd))
			}
			probed := map[int64]probe{} // by end: many cuts keep the same prefix
			for _, cut := range cuts {
				end, dur, err := ScanComplete(bytes.NewReader(file[:cut]), int64(cut))
				if err != nil {
					t.Fatalf("cut at %d: %v", cut, err)
				}
				want := initEnd
				for _, b := range bounds {
					if b <= cut {
						want = b
					}
				}
				if end != int64(want) {
					t.Fatalf("cut at %d: end %d, want %d", cut, end, want)
				}
				if want == initEnd {
					if dur != 0 {
						t.Fatalf("cut at %d: duration %v with no fragment", cut, dur)
					}
					continue
				}
				p, ok := probed[end]
				if !ok {
					p = ffprobe(t, file[:end], ".mp4")
					p.checkMonotonic(t)
					probed[end] = p
				}
				if d := p.duration(t); math.Abs(d-dur.Seconds()) > 0.1 {
					t.Fatalf("cut at %d: duration %v, ffprobe %.3f s", cut, dur, d)
				}
				if cut == len(file) && dur != st.Duration {
					t.Fatalf("whole file: duration %v, the writer said %v", dur, st.Duration)
				}
			}
		})
	}
}

// TestScanCompleteForeign scans ffmpeg's fragmented files, whole: the end
// is the last mdat's (separate.mp4 has an mfra after it).
func TestScanCompleteForeign(t *testing.T) {
	separate, err := os.ReadFile(filepath.Join("testdata", "separate.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"separate moofs": separate}
	for _, name := range fixtureNames {
		files[name+" segments"] = loadFixture(t, name).whole()
	}
	for name, file := range files {
		want := 0
		for pos := 0; pos < len(file); {
			typ, _, next, err := nextBox(file, pos)
			if err != nil {
				t.Fatal(err)
			}
			if typ == typeMdat {
				want = next
			}
			pos = next
		}
		end, dur, err := ScanComplete(bytes.NewReader(file), int64(len(file)))
		if err != nil || end != int64(want) || dur < time.Second {
			t.Errorf("%s: end %d, want %d, duration %v, %v", name, end, want, dur, err)
		}
	}
}

// errReader fails every read.
type errReader struct{}

var errRead = errors.New("read failed")

func (errReader) ReadAt([]byte, int64) (int, error) { return 0, errRead }

// TestScanCompleteDamaged checks files that are not whole fragmented MP4.
func TestScanCompleteDamaged(t *testing.T) {
	file, _ := writeMP4(t, loadFixture(t, "h264").demux(t), false)
	_, _, initEnd, err := parseInit(file)
	if err != nil {
		t.Fatal(err)
	}
	frags := fragmentStarts(t, file)
	for name, b := range map[string][]byte{
		"empty":         nil,
		"cut header":    file[:5],
		"cut in moov":   file[:initEnd-1],
		"flv":           []byte("FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00"),
		"fragment only": file[frags[0]:],
	} {
		if _, _, err := ScanComplete(bytes.NewReader(b), int64(len(b))); !errors.Is(err, ErrNotMP4) {
			t.Errorf("%s: got %v, want ErrNotMP4", name, err)
		}
	}

	// Zeros after the second fragment, as a crash can leave: the end is
	// the second fragment's.
	zeroed := slices.Clone(file)
	clear(zeroed[frags[2]:])
	if end, _, err := ScanComplete(bytes.NewReader(zeroed), int64(len(zeroed))); err != nil || end != int64(frags[2]) {
		t.Errorf("zeroed tail: end %d, want %d (%v)", end, frags[2], err)
	}
	// The third fragment's first sample said to be larger than its mdat.
	grown := slices.Clone(file)
	trun := frags[2] + bytes.Index(file[frags[2]:], []byte("trun")) + 4
	binary.BigEndian.PutUint32(grown[trun+12+4:], 1<<30)
	if end, _, err := ScanComplete(bytes.NewReader(grown), int64(len(grown))); err != nil || end != int64(frags[2]) {
		t.Errorf("oversized sample: end %d, want %d (%v)", end, frags[2], err)
	}
	if _, _, err := ScanComplete(errReader{}, 100); !errors.Is(err, errRead) {
		t.Errorf("read error: got %v", err)
	}
}

// rewindFile is a small written file followed by a fragment whose only
// traf has a tfdt of 0 and no samples.
func rewindFile(t testing.TB) []byte {
	t.Helper()
	tags := loadFixture(t, "h264").demux(t)
	in := tags[:2]
	for i, ts := range []int64{0, 40, 80} {
		data := []byte{0x27, 1, 0, 0, 0, byte(i)}
		if i == 0 {
			data[0] = 0x17
		}
		in = append(in, &flv.Tag{Type: flv.TagVideo, Timestamp: ts, Data: data})
	}
	file, _ := writeMP4(t, in, false)
	b, moof := startBox(file, typeMoof)
	b, traf := startBox(b, typeTraf)
	b, tfhd := startFullBox(b, typeTfhd, 0, tfhdDefaultBaseMoof)
	b = appendU32(b, videoTrackID)
	b = endBox(b, tfhd)
	b, tfdt := startFullBox(b, typeTfdt, 1, 0)
	b = appendU64(b, 0)
	b = endBox(b, tfdt)
	b = endBox(b, traf)
	b = endBox(b, moof)
	b, mdat := startBox(b, typeMdat)
	return endBox(b, mdat)
}

// TestScanCompleteRewind: a fragment without samples whose tfdt goes back
// does not shorten the duration (a FuzzScanComplete finding).
func TestScanCompleteRewind(t *testing.T) {
	file := rewindFile(t)
	end, dur, err := ScanComplete(bytes.NewReader(file), int64(len(file)))
	if err != nil || end != int64(len(file)) || dur != 120*time.Millisecond {
		t.Fatalf("end %d of %d, duration %v, want 120ms, %v", end, len(file), dur, err)
	}
}
