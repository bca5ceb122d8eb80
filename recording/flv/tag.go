// Package flv reads and writes FLV files tag by tag and repairs the tag
// stream of a Bilibili live broadcast so that every file it writes plays:
// timestamps start at zero and never go back, a new codec header starts a
// new file, and duplicated or stray tags are dropped.
//
// It works on io.Reader and io.Writer only; opening, naming and closing
// files belongs to package recording.
package flv

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// TagType is the kind of an FLV tag: the whole first byte of its header.
// Its top three bits are two reserved ones and the "filter" bit of an
// encrypted tag; a tag with any of them set is none of the kinds below, so
// the Repairer drops it rather than take it for a plain one, and a Writer
// writes it back as it came.
type TagType uint8

const (
	TagAudio  TagType = 8
	TagVideo  TagType = 9
	TagScript TagType = 18
)

func (t TagType) String() string {
	switch t {
	case TagAudio:
		return "audio"
	case TagVideo:
		return "video"
	case TagScript:
		return "script"
	}
	return fmt.Sprintf("type %d", uint8(t))
}

// Sizes of the fixed parts of an FLV file.
const (
	HeaderLen    = 9  // "FLV", version, flags, data offset
	TagHeaderLen = 11 // type, data size, timestamp, stream id
	// MaxTagDataLen is what the 24-bit size field can hold.
	MaxTagDataLen = 1<<24 - 1
)

// Header flags.
const (
	FlagVideo = 0x01
	FlagAudio = 0x04
)

// ErrNotFLV is returned when a stream does not start with an FLV header.
var ErrNotFLV = errors.New("not an FLV stream")

// ErrCorruptTag is returned when the previous-tag-size field after a tag
// does not match the tag. The size in the tag's header is then wrong: its
// data is not what was sent, and the stream has lost its place, so what
// follows cannot be read as tags either.
var ErrCorruptTag = errors.New("corrupt FLV tag")

// Tag is one FLV tag. Timestamp is in milliseconds; it is signed so that
// repair rules can compute with it, and is written as the FLV's 32-bit value.
type Tag struct {
	Type      TagType
	Timestamp int64
	StreamID  uint32
	Data      []byte
}

// IsKeyframe reports whether t is a video keyframe (including the AVC
// sequence header, which FLV also marks as a keyframe).
func (t *Tag) IsKeyframe() bool {
	return t.Type == TagVideo && len(t.Data) > 0 && t.Data[0]>>4 == 1
}

// IsSequenceHeader reports whether t carries codec configuration: an AVC or
// HEVC decoder configuration record, or an AAC AudioSpecificConfig.
func (t *Tag) IsSequenceHeader() bool {
	if len(t.Data) < 2 {
		return false
	}
	switch t.Type {
	case TagVideo:
		codec := t.Data[0] & 0x0f
		return (codec == 7 || codec == 12) && t.Data[1] == 0
	case TagAudio:
		return t.Data[0]>>4 == 10 && t.Data[1] == 0
	}
	return false
}

// IsEndOfSequence reports whether t is an AVC or HEVC end-of-sequence
// marker, which an encoder sends when it stops.
func (t *Tag) IsEndOfSequence() bool {
	if t.Type != TagVideo || len(t.Data) < 2 {
		return false
	}
	codec := t.Data[0] & 0x0f
	return (codec == 7 || codec == 12) && t.Data[1] == 2
}

// Clone returns a copy of t that owns its data.
func (t *Tag) Clone() *Tag {
	c := *t
	c.Data = append([]byte(nil), t.Data...)
	return &c
}

// Reader reads an FLV stream tag by tag. It reuses one buffer for tag data,
// so the Data of a returned Tag is valid only until the next ReadTag.
//
// Over a *bufio.Reader, a tag that fits the bufio buffer is not copied at
// all: its Data points into that buffer, and its bytes are consumed at the
// next ReadTag. A recording copies each tag once fewer that way, which at
// hundreds of MB/s is work worth saving.
type Reader struct {
	r       io.Reader
	br      *bufio.Reader // r, when it is one: tags are read in place
	discard int           // bytes of br the last tag returned still holds
	hdr     [TagHeaderLen + 4]byte
	tag     Tag
	buf     []byte
}

// NewReader returns a Reader reading from r.
func NewReader(r io.Reader) *Reader {
	br, _ := r.(*bufio.Reader)
	return &Reader{r: r, br: br}
}

// ReadHeader reads the FLV file header and the first previous-tag-size field,
// returning the header flags. It returns ErrNotFLV if the signature is wrong.
func (r *Reader) ReadHeader() (flags byte, err error) {
	r.release()
	var h [HeaderLen]byte
	if _, err := io.ReadFull(r.r, h[:]); err != nil {
		return 0, fmt.Errorf("read flv header: %w", err)
	}
	offset, err := dataOffset(&h)
	if err != nil {
		return 0, err
	}
	// Skip any extension bytes and PreviousTagSize0.
	if _, err := io.CopyN(io.Discard, r.r, offset-HeaderLen+4); err != nil {
		return 0, fmt.Errorf("read flv header: %w", err)
	}
	return h[4], nil
}

// dataOffset returns where the tags of an FLV file start, before
// PreviousTagSize0, as its header says. It returns ErrNotFLV if the
// signature is wrong or the offset is not one a real file has.
func dataOffset(h *[HeaderLen]byte) (int64, error) {
	if h[0] != 'F' || h[1] != 'L' || h[2] != 'V' {
		return 0, ErrNotFLV
	}
	offset := binary.BigEndian.Uint32(h[5:9])
	if offset < HeaderLen || offset > 1024 {
		return 0, fmt.Errorf("%w: header data offset %d", ErrNotFLV, offset)
	}
	return int64(offset), nil
}

// ReadTag reads the next tag and the previous-tag-size field after it. At a
// clean end of stream it returns io.EOF; a tag cut short returns
// io.ErrUnexpectedEOF, and one whose previous-tag-size field does not match
// returns ErrCorruptTag.
func (r *Reader) ReadTag() (*Tag, error) {
	r.release()
	if r.br != nil {
		return r.readInPlace()
	}
	if _, err := io.ReadFull(r.r, r.hdr[:TagHeaderLen]); err != nil {
		return nil, err
	}
	size := r.parseHeader(r.hdr[:TagHeaderLen])
	buf, err := r.readBody(size + 4)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return r.finishTag(buf, size)
}

// readInPlace is ReadTag over a bufio.Reader: the tag is looked at where
// it lies in the buffer, and consumed at the next call. A tag larger than
// the buffer is copied as over any other reader.
func (r *Reader) readInPlace() (*Tag, error) {
	h, err := r.br.Peek(TagHeaderLen)
	if err != nil {
		if err == io.EOF && len(h) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	size := r.parseHeader(h)
	whole := TagHeaderLen + size + 4
	if whole > r.br.Size() {
		r.br.Discard(TagHeaderLen)
		buf, err := r.readBody(size + 4)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		return r.finishTag(buf, size)
	}
	b, err := r.br.Peek(whole)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		// As a copying read would have: what came is consumed.
		r.br.Discard(len(b))
		return nil, err
	}
	r.discard = whole
	return r.finishTag(b[TagHeaderLen:], size)
}

// release consumes the bytes of the tag last read in place.
func (r *Reader) release() {
	if r.discard > 0 {
		r.br.Discard(r.discard)
		r.discard = 0
	}
}

// parseHeader sets r.tag from a tag header and returns its data size.
func (r *Reader) parseHeader(h []byte) int {
	size := int(h[1])<<16 | int(h[2])<<8 | int(h[3])
	ts := uint32(h[7])<<24 | uint32(h[4])<<16 | uint32(h[5])<<8 | uint32(h[6])
	r.tag = Tag{
		Type:      TagType(h[0]),
		Timestamp: int64(int32(ts)),
		StreamID:  uint32(h[8])<<16 | uint32(h[9])<<8 | uint32(h[10]),
	}
	return size
}

// finishTag checks the previous-tag-size field at the end of buf, the tag's
// data and trailer, and returns the tag.
func (r *Reader) finishTag(buf []byte, size int) (*Tag, error) {
	if prev := binary.BigEndian.Uint32(buf[size:]); prev != uint32(TagHeaderLen+size) {
		return nil, fmt.Errorf("%w: %s tag of %d bytes is followed by previous-tag-size %d", ErrCorruptTag, r.tag.Type, size, prev)
	}
	r.tag.Data = buf[:size]
	return &r.tag, nil
}

// minTagBuffer is the smallest data buffer a Reader keeps: most tags of a
// live stream fit, so it is allocated once.
const minTagBuffer = 64 << 10

// readBody reads the n bytes of a tag's data and trailer into the reused
// buffer. A buffer too small is grown as the bytes arrive, at most doubling
// each time, rather than to n at once: the size comes from the stream, and
// a corrupt one (up to 16 MiB) would otherwise cost that much memory before
// a byte of it was there.
func (r *Reader) readBody(n int) ([]byte, error) {
	buf := r.buf[:0]
	for len(buf) < n {
		if len(buf) == cap(buf) {
			// Double, from minTagBuffer up, but no further than n needs.
			size := min(max(2*cap(buf), minTagBuffer), max(n, minTagBuffer))
			grown := make([]byte, len(buf), size)
			copy(grown, buf)
			buf = grown
			r.buf = grown
		}
		got, err := io.ReadFull(r.r, buf[len(buf):min(n, cap(buf))])
		buf = buf[:len(buf)+got]
		if err != nil {
			return nil, err
		}
	}
	return buf, nil
}

// Writer writes an FLV stream. It counts the bytes written so callers can
// record keyframe positions and file sizes without asking the file.
type Writer struct {
	w       io.Writer
	hdr     [TagHeaderLen]byte
	trailer [4]byte
	written int64
}

// NewWriter returns a Writer writing to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w}
}

// Written returns the number of bytes written so far.
func (w *Writer) Written() int64 { return w.written }

// WriteHeader writes the FLV file header with the given flags and
// PreviousTagSize0.
func (w *Writer) WriteHeader(flags byte) error {
	return w.write(AppendHeader(nil, flags))
}

// WriteTag writes t and the previous-tag-size field after it.
func (w *Writer) WriteTag(t *Tag) error {
	if len(t.Data) > MaxTagDataLen {
		return fmt.Errorf("write flv tag: %d bytes of data is over the FLV limit", len(t.Data))
	}
	w.hdr = tagHeader(t)
	if err := w.write(w.hdr[:]); err != nil {
		return err
	}
	if err := w.write(t.Data); err != nil {
		return err
	}
	binary.BigEndian.PutUint32(w.trailer[:], uint32(TagHeaderLen+len(t.Data)))
	return w.write(w.trailer[:])
}

// AppendHeader appends the FLV file header and PreviousTagSize0.
func AppendHeader(dst []byte, flags byte) []byte {
	return append(dst, 'F', 'L', 'V', 1, flags, 0, 0, 0, HeaderLen, 0, 0, 0, 0)
}

// AppendTag appends t as it goes in a file: header, data and the
// previous-tag-size field. Data longer than MaxTagDataLen is the caller's
// error to prevent.
func AppendTag(dst []byte, t *Tag) []byte {
	h := tagHeader(t)
	dst = append(dst, h[:]...)
	dst = append(dst, t.Data...)
	return binary.BigEndian.AppendUint32(dst, uint32(TagHeaderLen+len(t.Data)))
}

func tagHeader(t *Tag) [TagHeaderLen]byte {
	size, ts := len(t.Data), uint32(t.Timestamp)
	return [TagHeaderLen]byte{
		byte(t.Type),
		byte(size >> 16), byte(size >> 8), byte(size),
		byte(ts >> 16), byte(ts >> 8), byte(ts), byte(ts >> 24),
		byte(t.StreamID >> 16), byte(t.StreamID >> 8), byte(t.StreamID),
	}
}

func (w *Writer) write(p []byte) error {
	n, err := w.w.Write(p)
	w.written += int64(n)
	if err != nil {
		return fmt.Errorf("write flv: %w", err)
	}
	return nil
}
