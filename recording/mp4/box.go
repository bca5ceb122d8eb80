package mp4

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// boxType is a box's four-character code as a big-endian number, so a
// switch on it compiles to integer compares.
type boxType uint32

func fourCC(s string) boxType {
	return boxType(uint32(s[0])<<24 | uint32(s[1])<<16 | uint32(s[2])<<8 | uint32(s[3]))
}

func (t boxType) String() string {
	b := [4]byte{byte(t >> 24), byte(t >> 16), byte(t >> 8), byte(t)}
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("0x%08x", uint32(t))
		}
	}
	return string(b[:])
}

var (
	typeFtyp = fourCC("ftyp")
	typeMoov = fourCC("moov")
	typeMvhd = fourCC("mvhd")
	typeTrak = fourCC("trak")
	typeTkhd = fourCC("tkhd")
	typeMdia = fourCC("mdia")
	typeMdhd = fourCC("mdhd")
	typeHdlr = fourCC("hdlr")
	typeMinf = fourCC("minf")
	typeStbl = fourCC("stbl")
	typeStsd = fourCC("stsd")
	typeMvex = fourCC("mvex")
	typeMehd = fourCC("mehd")
	typeTrex = fourCC("trex")
	typeAvc1 = fourCC("avc1")
	typeAvc3 = fourCC("avc3")
	typeAvcC = fourCC("avcC")
	typeHvc1 = fourCC("hvc1")
	typeHev1 = fourCC("hev1")
	typeHvcC = fourCC("hvcC")
	typeMp4a = fourCC("mp4a")
	typeEsds = fourCC("esds")
	typeMoof = fourCC("moof")
	typeMfhd = fourCC("mfhd")
	typeTraf = fourCC("traf")
	typeTfhd = fourCC("tfhd")
	typeTfdt = fourCC("tfdt")
	typeTrun = fourCC("trun")
	typeMdat = fourCC("mdat")
	typeFree = fourCC("free")
	typeSkip = fourCC("skip")
	typeStyp = fourCC("styp")
	typeSidx = fourCC("sidx")
	typePrft = fourCC("prft")
	typeEmsg = fourCC("emsg")
	typeMfra = fourCC("mfra")
	typeUdta = fourCC("udta")
	typeUUID = fourCC("uuid")
)

// errTruncated says a box runs past the bytes that hold it.
var errTruncated = errors.New("box runs past its container")

// nextBox reads the box header at b[pos:] and returns the box's type, its
// payload and where the next box starts. A size of 0 means the box runs to
// the end of b, as ISO/IEC 14496-12 allows for the last box of a file.
func nextBox(b []byte, pos int) (typ boxType, body []byte, next int, err error) {
	rest := len(b) - pos
	if rest < 8 {
		return 0, nil, 0, fmt.Errorf("box header at %d: %w", pos, errTruncated)
	}
	size := uint64(binary.BigEndian.Uint32(b[pos:]))
	typ = boxType(binary.BigEndian.Uint32(b[pos+4:]))
	hdr := 8
	switch size {
	case 0:
		size = uint64(rest)
	case 1:
		if rest < 16 {
			return 0, nil, 0, fmt.Errorf("%v header at %d: %w", typ, pos, errTruncated)
		}
		size, hdr = binary.BigEndian.Uint64(b[pos+8:]), 16
	}
	if size < uint64(hdr) || size > uint64(rest) {
		return 0, nil, 0, fmt.Errorf("%v of %d bytes at %d: %w", typ, size, pos, errTruncated)
	}
	return typ, b[pos+hdr : pos+int(size)], pos + int(size), nil
}

// findBox returns the payload of the first child of type typ in b, a box's
// payload, or nil if there is none.
func findBox(b []byte, typ boxType) []byte {
	for pos := 0; pos < len(b); {
		t, body, next, err := nextBox(b, pos)
		if err != nil {
			return nil
		}
		if t == typ {
			return body
		}
		pos = next
	}
	return nil
}

// Writing: boxes are appended to a byte slice, with the size patched in
// when the box is closed.

func startBox(b []byte, typ boxType) ([]byte, int) {
	return binary.BigEndian.AppendUint64(b, uint64(typ)), len(b)
}

func startFullBox(b []byte, typ boxType, version byte, flags uint32) ([]byte, int) {
	b, at := startBox(b, typ)
	return binary.BigEndian.AppendUint32(b, uint32(version)<<24|flags&0xffffff), at
}

func endBox(b []byte, at int) []byte {
	binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at))
	return b
}

func appendU16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func appendU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// appendZeros appends n zero bytes.
func appendZeros(b []byte, n int) []byte {
	for range n {
		b = append(b, 0)
	}
	return b
}

// unityMatrix is the identity transformation of mvhd and tkhd.
var unityMatrix = [9]uint32{0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000}

func appendMatrix(b []byte) []byte {
	for _, v := range unityMatrix {
		b = appendU32(b, v)
	}
	return b
}
