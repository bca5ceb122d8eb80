package flv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
)

// readAll reads a stream's header and tags with a Reader over r and
// returns a copy of each tag and the error that ended the stream.
func readAll(r io.Reader) ([]*Tag, error) {
	fr := NewReader(r)
	if _, err := fr.ReadHeader(); err != nil {
		return nil, err
	}
	var tags []*Tag
	for {
		tag, err := fr.ReadTag()
		if err != nil {
			return tags, err
		}
		tags = append(tags, tag.Clone())
	}
}

// TestReaderInPlaceMatchesCopying reads a real sample, with tags made
// larger than the bufio buffer among its own, through a bufio.Reader (tags
// read in place, large ones copied) and through a plain reader, whole and
// cut at every few bytes, and with a corrupt trailer: both must return the
// same tags and the same error.
func TestReaderInPlaceMatchesCopying(t *testing.T) {
	header, pieces := samplePieces(t, "sample_a.flv")
	pieces = pieces[:min(len(pieces), 60)]
	big := AppendTag(nil, &Tag{Type: TagVideo, Timestamp: 5, Data: bytes.Repeat([]byte{0x27, 1, 0, 0, 0, 9}, 3000)})
	pieces = append(pieces[:20:20], append([][]byte{big}, pieces[20:]...)...)
	stream := joinPieces(header, pieces...)
	corrupt := bytes.Clone(stream)
	corrupt[len(corrupt)-1] ^= 1

	const bufSize = 4096 // smaller than the big tag, larger than most
	check := func(name string, data []byte) {
		t.Helper()
		want, wantErr := readAll(bytes.NewReader(data))
		got, gotErr := readAll(bufio.NewReaderSize(bytes.NewReader(data), bufSize))
		if len(got) != len(want) {
			t.Fatalf("%s: got %d tags, want %d", name, len(got), len(want))
		}
		for i := range got {
			if fmt.Sprint(*got[i]) != fmt.Sprint(*want[i]) {
				t.Fatalf("%s: tag %d: got %v, want %v", name, i, *got[i], *want[i])
			}
		}
		for _, target := range []error{io.EOF, io.ErrUnexpectedEOF, ErrCorruptTag, ErrNotFLV} {
			if errors.Is(gotErr, target) != errors.Is(wantErr, target) {
				t.Fatalf("%s: got error %v, want %v", name, gotErr, wantErr)
			}
		}
	}
	check("whole", stream)
	check("corrupt", corrupt)
	for cut := 0; cut < len(stream); cut += 97 {
		check(fmt.Sprintf("cut at %d", cut), stream[:cut])
	}
}
