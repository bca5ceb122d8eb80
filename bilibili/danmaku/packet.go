package danmaku

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/andybalholm/brotli"
)

// HeaderLen is the length of every packet header. Bilibili sends it in the
// header itself; a packet that claims another length is malformed.
const HeaderLen = 16

// Limits on what a decoder accepts. Real packets are a few KiB and a
// compressed batch rarely expands past a few hundred KiB, so anything near
// these sizes is a broken or hostile peer, not a busy room.
const (
	MaxPacketLen       = 4 << 20
	MaxDecompressedLen = 16 << 20
)

// Op is the operation a packet carries.
type Op uint32

const (
	OpHeartbeat      Op = 2
	OpHeartbeatReply Op = 3
	OpMessage        Op = 5
	OpAuth           Op = 7
	OpAuthReply      Op = 8
)

// Version says how a packet's body is encoded.
type Version uint16

const (
	VersionJSON   Version = 0 // a JSON message
	VersionInt    Version = 1 // heartbeat, auth and their replies
	VersionZlib   Version = 2 // zlib-compressed packets
	VersionBrotli Version = 3 // brotli-compressed packets
)

// Packet is one decoded packet. A Packet handed to a Decoder callback has a
// Body that is only valid during the call.
type Packet struct {
	Version Version
	Op      Op
	Seq     uint32
	Body    []byte
}

// ErrMalformed is wrapped by every error about bytes that are not valid
// packets, so callers can tell a broken peer from a broken connection.
var ErrMalformed = errors.New("malformed danmaku packet")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// AppendPacket appends p, header and body, to dst as it goes on the wire.
// It does not compress; see EncodeBatch.
func AppendPacket(dst []byte, p Packet) []byte {
	var h [HeaderLen]byte
	binary.BigEndian.PutUint32(h[0:4], uint32(HeaderLen+len(p.Body)))
	binary.BigEndian.PutUint16(h[4:6], HeaderLen)
	binary.BigEndian.PutUint16(h[6:8], uint16(p.Version))
	binary.BigEndian.PutUint32(h[8:12], uint32(p.Op))
	binary.BigEndian.PutUint32(h[12:16], p.Seq)
	dst = append(dst, h[:]...)
	return append(dst, p.Body...)
}

// EncodeBatch packs the given packets into one OpMessage packet whose body is
// their concatenation compressed with version (VersionZlib or VersionBrotli),
// the way Bilibili batches messages.
func EncodeBatch(version Version, packets ...Packet) ([]byte, error) {
	var plain []byte
	for _, p := range packets {
		plain = AppendPacket(plain, p)
	}
	var body bytes.Buffer
	var w io.WriteCloser
	switch version {
	case VersionZlib:
		w = zlib.NewWriter(&body)
	case VersionBrotli:
		w = brotli.NewWriter(&body)
	default:
		return nil, fmt.Errorf("encode batch: version %d is not a compression", version)
	}
	if _, err := w.Write(plain); err != nil {
		return nil, fmt.Errorf("encode batch: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encode batch: %w", err)
	}
	return AppendPacket(nil, Packet{Version: version, Op: OpMessage, Body: body.Bytes()}), nil
}

// Decoder splits websocket frames into packets, decompressing batches. It
// reuses its buffers and decompressors between frames, so one Decoder serves
// one connection and is not safe for concurrent use.
type Decoder struct {
	plain  bytes.Buffer
	brotli *brotli.Reader
	zlib   io.ReadCloser
	src    bytes.Reader
}

// Decode calls fn for every packet in frame, in order, with compressed
// batches expanded in place. It stops at the first error from fn or at the
// first malformed packet, returning an error that wraps ErrMalformed; the
// packets before it have been delivered.
func (d *Decoder) Decode(frame []byte, fn func(Packet) error) error {
	return d.decode(frame, fn, false)
}

func (d *Decoder) decode(buf []byte, fn func(Packet) error, nested bool) error {
	for len(buf) > 0 {
		if len(buf) < HeaderLen {
			return malformed("%d trailing bytes are shorter than a header", len(buf))
		}
		size := binary.BigEndian.Uint32(buf[0:4])
		hlen := binary.BigEndian.Uint16(buf[4:6])
		p := Packet{
			Version: Version(binary.BigEndian.Uint16(buf[6:8])),
			Op:      Op(binary.BigEndian.Uint32(buf[8:12])),
			Seq:     binary.BigEndian.Uint32(buf[12:16]),
		}
		switch {
		case hlen != HeaderLen:
			return malformed("header length %d, want %d", hlen, HeaderLen)
		case size < HeaderLen:
			return malformed("packet length %d is shorter than its header", size)
		case size > MaxPacketLen:
			return malformed("packet length %d is over the limit of %d", size, MaxPacketLen)
		case int(size) > len(buf):
			return malformed("packet length %d runs past the %d bytes received", size, len(buf))
		}
		p.Body = buf[HeaderLen:size]
		buf = buf[size:]

		if p.Version != VersionZlib && p.Version != VersionBrotli {
			if err := fn(p); err != nil {
				return err
			}
			continue
		}
		// Bilibili never nests a batch inside a batch; refusing it bounds
		// the work a hostile frame can ask for.
		if nested {
			return malformed("compressed packet inside a compressed packet")
		}
		inner, err := d.decompress(p.Version, p.Body)
		if err != nil {
			return err
		}
		if err := d.decode(inner, fn, true); err != nil {
			return err
		}
	}
	return nil
}

// decompress expands body into the decoder's buffer. The result is valid
// until the next call.
func (d *Decoder) decompress(v Version, body []byte) ([]byte, error) {
	d.src.Reset(body)
	var r io.Reader
	switch v {
	case VersionZlib:
		if d.zlib == nil {
			zr, err := zlib.NewReader(&d.src)
			if err != nil {
				return nil, malformed("zlib: %v", err)
			}
			d.zlib = zr
		} else if err := d.zlib.(zlib.Resetter).Reset(&d.src, nil); err != nil {
			return nil, malformed("zlib: %v", err)
		}
		r = d.zlib
	case VersionBrotli:
		if d.brotli == nil {
			d.brotli = brotli.NewReader(&d.src)
		} else if err := d.brotli.Reset(&d.src); err != nil {
			return nil, malformed("brotli: %v", err)
		}
		r = d.brotli
	}
	d.plain.Reset()
	n, err := d.plain.ReadFrom(io.LimitReader(r, MaxDecompressedLen+1))
	if err != nil {
		return nil, malformed("decompress version %d: %v", v, err)
	}
	if n > MaxDecompressedLen {
		return nil, malformed("decompressed body is over the limit of %d bytes", MaxDecompressedLen)
	}
	return d.plain.Bytes(), nil
}
