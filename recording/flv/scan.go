package flv

import (
	"encoding/binary"
	"fmt"
	"io"
)

// ScanComplete reads an FLV file that may have been cut off anywhere (a
// crash, a full disk) and returns the offset just past its last whole tag,
// where the file should be cut so any player opens it, and the largest
// audio or video timestamp before that point, in milliseconds. It reads
// only tag headers. A file without even an FLV header returns ErrNotFLV.
func ScanComplete(r io.ReaderAt, size int64) (end, lastTS int64, err error) {
	var h [HeaderLen]byte
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return 0, 0, ErrNotFLV
	}
	if h[0] != 'F' || h[1] != 'L' || h[2] != 'V' {
		return 0, 0, ErrNotFLV
	}
	end = int64(binary.BigEndian.Uint32(h[5:9])) + 4
	if end > size {
		return 0, 0, fmt.Errorf("%w: header runs past the end", ErrNotFLV)
	}
	var th [TagHeaderLen]byte
	for {
		if end+TagHeaderLen > size {
			return end, lastTS, nil
		}
		if _, err := r.ReadAt(th[:], end); err != nil {
			return end, lastTS, nil
		}
		typ := TagType(th[0] & 0x1f)
		if typ != TagAudio && typ != TagVideo && typ != TagScript {
			return end, lastTS, nil // garbage from a torn write
		}
		dataLen := int64(th[1])<<16 | int64(th[2])<<8 | int64(th[3])
		next := end + TagHeaderLen + dataLen + 4
		if next > size {
			return end, lastTS, nil
		}
		if typ != TagScript {
			ts := int64(int32(uint32(th[7])<<24 | uint32(th[4])<<16 | uint32(th[5])<<8 | uint32(th[6])))
			lastTS = max(lastTS, ts)
		}
		end = next
	}
}
