package flv

import (
	"encoding/binary"
	"fmt"
	"io"
)

// ScanComplete reads an FLV file that may have been cut off anywhere (a
// crash, a full disk) and returns the offset just past its last whole tag,
// where the file should be cut so any player opens it, and the largest
// audio or video timestamp before that point, in milliseconds, or 0 if none
// is positive. A whole tag is an audio, video or script tag with all its
// data and a previous-tag-size that matches it, as the Reader checks; the
// first thing that is not one is taken for the garbage of a torn write, and
// the file ends before it. It reads only the header and previous-tag-size
// of each tag. A file without even an FLV header returns ErrNotFLV.
func ScanComplete(r io.ReaderAt, size int64) (end, lastTS int64, err error) {
	var h [HeaderLen]byte
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return 0, 0, ErrNotFLV
	}
	offset, err := dataOffset(&h)
	if err != nil {
		return 0, 0, err
	}
	end = offset + 4
	if end > size {
		return 0, 0, fmt.Errorf("%w: header runs past the end", ErrNotFLV)
	}
	var th [TagHeaderLen]byte
	var prev [4]byte
	for {
		if end+TagHeaderLen > size {
			return end, lastTS, nil
		}
		if _, err := r.ReadAt(th[:], end); err != nil {
			return end, lastTS, nil
		}
		typ := TagType(th[0])
		if typ != TagAudio && typ != TagVideo && typ != TagScript {
			return end, lastTS, nil // garbage from a torn write
		}
		dataLen := int64(th[1])<<16 | int64(th[2])<<8 | int64(th[3])
		next := end + TagHeaderLen + dataLen + 4
		if next > size {
			return end, lastTS, nil
		}
		if _, err := r.ReadAt(prev[:], next-4); err != nil || int64(binary.BigEndian.Uint32(prev[:])) != TagHeaderLen+dataLen {
			return end, lastTS, nil // the size field is damaged
		}
		if typ != TagScript {
			ts := int64(int32(uint32(th[7])<<24 | uint32(th[4])<<16 | uint32(th[5])<<8 | uint32(th[6])))
			lastTS = max(lastTS, ts)
		}
		end = next
	}
}
