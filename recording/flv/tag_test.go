package flv

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// readSampleFile returns the bytes of a simulator sample, made by ffmpeg
// (see make-samples.sh next to it).
func readSampleFile(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "bilibili", "bilibilitest", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// samplePieces returns a sample's file header (with PreviousTagSize0) and
// each of its tags as the bytes it is in the file, trailer included, so
// fuzz seeds can be cut from the real file. Seeds are kept to a few hundred
// bytes: the fuzzer minimizes every input that finds new code, in time
// quadratic in its length, so a seed of a whole 160 KB sample would leave
// it minimizing instead of fuzzing.
func samplePieces(t testing.TB, name string) (header []byte, tags [][]byte) {
	t.Helper()
	raw := readSampleFile(t, name)
	pos := int(dataStart(raw))
	header = raw[:pos]
	for pos+TagHeaderLen <= len(raw) {
		size := int(raw[pos+1])<<16 | int(raw[pos+2])<<8 | int(raw[pos+3])
		next := pos + TagHeaderLen + size + 4
		tags = append(tags, raw[pos:next])
		pos = next
	}
	return header, tags
}

// joinPieces returns an FLV file made of a header and tags.
func joinPieces(header []byte, tags ...[]byte) []byte {
	return bytes.Join(append([][]byte{header}, tags...), nil)
}

// dataStart returns where the first tag of data starts, past
// PreviousTagSize0. data must start with a header the Reader accepts.
func dataStart(data []byte) int64 {
	offset, err := dataOffset((*[HeaderLen]byte)(data))
	if err != nil {
		panic(err)
	}
	return offset + 4
}

// TestReaderRoundTripsSamples reads each ffmpeg sample whole and writes it
// again with the Writer: the copy must be the file, byte for byte.
func TestReaderRoundTripsSamples(t *testing.T) {
	for _, name := range []string{"sample_a.flv", "sample_b.flv"} {
		t.Run(name, func(t *testing.T) {
			raw := readSampleFile(t, name)
			r := NewReader(bytes.NewReader(raw))
			flags, err := r.ReadHeader()
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			w := NewWriter(&out)
			if err := w.WriteHeader(flags); err != nil {
				t.Fatal(err)
			}
			tags := 0
			for {
				tag, err := r.ReadTag()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("tag %d: %v", tags, err)
				}
				if err := w.WriteTag(tag); err != nil {
					t.Fatal(err)
				}
				tags++
			}
			if i := firstDifference(out.Bytes(), raw); i >= 0 {
				t.Errorf("copy of %d tags differs from the file at byte %d of %d", tags, i, len(raw))
			}
		})
	}
}

// FuzzReader reads arbitrary bytes as an FLV stream, the way a CDN's bytes
// or a damaged file reach the Reader. It asserts:
//
//   - every tag the Reader returns encodes, through AppendTag and through
//     Writer, to exactly the bytes it was read from, trailer included, so
//     the accepted prefix of the stream round-trips byte for byte;
//   - no tag has more than MaxTagDataLen bytes of data;
//   - the stream ends with io.EOF only where a tag ends at the end of the
//     input, and otherwise with an error the caller can name
//     (io.ErrUnexpectedEOF, ErrCorruptTag), never a panic;
//   - the buffer the Reader keeps stays in proportion to the bytes it was
//     given, whatever size a tag header claims: a corrupt size field must
//     not cost 16 MiB of memory.
func FuzzReader(f *testing.F) {
	for _, name := range []string{"sample_a.flv", "sample_b.flv"} {
		header, tags := samplePieces(f, name)
		opening := joinPieces(header, tags[:3]...) // onMetaData and both sequence headers
		f.Add(opening)
		f.Add(opening[:len(opening)-10])                 // cut in the last tag
		f.Add(joinPieces(header, tags[len(tags)-4:]...)) // audio, video, end of sequence
	}
	f.Add(AppendHeader(nil, FlagAudio|FlagVideo))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		if _, err := r.ReadHeader(); err != nil {
			return
		}
		pos := int(dataStart(data))
		var out bytes.Buffer
		w := NewWriter(&out)
		for {
			tag, err := r.ReadTag()
			// White-box: the memory a reader holds is its data buffer.
			if c, limit := cap(r.buf), max(2*len(data), minTagBuffer); c > limit {
				t.Fatalf("reader holds a %d-byte buffer after %d bytes of input", c, len(data))
			}
			if err == io.EOF {
				if pos != len(data) {
					t.Fatalf("io.EOF at %d, input is %d bytes", pos, len(data))
				}
				return
			}
			if err != nil {
				if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrCorruptTag) {
					t.Fatalf("tag at %d: error %v, want io.ErrUnexpectedEOF or ErrCorruptTag", pos, err)
				}
				return
			}
			if len(tag.Data) > MaxTagDataLen {
				t.Fatalf("tag at %d has %d bytes of data", pos, len(tag.Data))
			}
			enc := AppendTag(nil, tag)
			read := data[pos:min(pos+len(enc), len(data))]
			if i := firstDifference(enc, read); i >= 0 {
				t.Fatalf("tag at %d (%s, %d bytes of data) encodes differently at byte %d: %#x, read %#x",
					pos, tag.Type, len(tag.Data), i, byteAt(enc, i), byteAt(read, i))
			}
			before := out.Len()
			if err := w.WriteTag(tag); err != nil {
				t.Fatalf("Writer refuses the tag at %d: %v", pos, err)
			}
			if !bytes.Equal(out.Bytes()[before:], enc) || w.Written() != int64(out.Len()) {
				t.Fatalf("Writer and AppendTag disagree on the tag at %d", pos)
			}
			pos += len(enc)
		}
	})
}

// firstDifference returns the first index at which a and b differ, or -1
// if they are equal.
func firstDifference(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// byteAt returns b[i], or -1 past the end, for messages.
func byteAt(b []byte, i int) int {
	if i < len(b) {
		return int(b[i])
	}
	return -1
}
