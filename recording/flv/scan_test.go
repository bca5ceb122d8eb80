package flv

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// FuzzScanComplete runs ScanComplete on recordings cut short and damaged,
// as a crash or a full disk leaves them, and checks what storage relies on
// when it truncates such a file to end:
//
//   - ScanComplete rejects the file as not FLV (ErrNotFLV) exactly when
//     the Reader cannot read its header;
//   - end <= size, and data[:end] is the header and whole tags: the Reader
//     reads it without error up to io.EOF, which comes exactly at end;
//   - end is past the last whole tag, not before it: the Reader finds no
//     whole audio, video or script tag at end in the full data (it may find
//     a whole tag of another type, which ScanComplete takes for garbage);
//   - lastTS is the largest audio or video timestamp in data[:end], or 0 if
//     none is positive, as the doc comment says.
//
// The seeds are two real stretches of sample_a (its opening and its end),
// whole, cut at random points and with random bytes flipped.
func FuzzScanComplete(f *testing.F) {
	header, tags := samplePieces(f, "sample_a.flv")
	rng := rand.New(rand.NewPCG(10, 3))
	for _, stretch := range [][]byte{
		joinPieces(header, tags[:3]...),
		joinPieces(header, tags[len(tags)-6:]...),
	} {
		f.Add(stretch)
		for range 4 {
			f.Add(stretch[:rng.IntN(len(stretch))])
			flipped := bytes.Clone(stretch)
			flipped[rng.IntN(len(flipped))] ^= byte(1 << rng.IntN(8))
			f.Add(flipped)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		size := int64(len(data))
		end, lastTS, err := ScanComplete(bytes.NewReader(data), size)
		full := NewReader(bytes.NewReader(data))
		if _, herr := full.ReadHeader(); (err != nil) != (herr != nil) {
			t.Fatalf("ScanComplete: %v; Reader.ReadHeader: %v", err, herr)
		}
		if err != nil {
			if !errors.Is(err, ErrNotFLV) {
				t.Fatalf("ScanComplete: %v, want ErrNotFLV", err)
			}
			return
		}
		if end > size {
			t.Fatalf("end %d past the size %d", end, size)
		}

		kept := NewReader(bytes.NewReader(data[:end]))
		if _, err := kept.ReadHeader(); err != nil {
			t.Fatalf("data[:%d] has no header: %v", end, err)
		}
		pos := dataStart(data)
		var want int64
		for {
			tag, err := kept.ReadTag()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("data[:%d] holds a broken tag at %d: %v", end, pos, err)
			}
			if tag.Type == TagAudio || tag.Type == TagVideo {
				want = max(want, tag.Timestamp)
			}
			pos += int64(TagHeaderLen + len(tag.Data) + 4)
			if _, err := full.ReadTag(); err != nil {
				t.Fatalf("the tag at %d reads from data[:%d] but not from data: %v", pos, end, err)
			}
		}
		if pos != end {
			t.Fatalf("io.EOF at %d, end is %d", pos, end)
		}
		if lastTS != want {
			t.Fatalf("lastTS %d, want %d", lastTS, want)
		}
		if tag, err := full.ReadTag(); err == nil && (tag.Type == TagAudio || tag.Type == TagVideo || tag.Type == TagScript) {
			t.Fatalf("end %d is before a whole %s tag of %d bytes", end, tag.Type, len(tag.Data))
		}
	})
}
