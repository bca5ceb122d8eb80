package flv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// AMF0 type markers used in FLV script data.
const (
	amfNumber      = 0x00
	amfBoolean     = 0x01
	amfString      = 0x02
	amfObject      = 0x03
	amfNull        = 0x05
	amfUndefined   = 0x06
	amfECMAArray   = 0x08
	amfObjectEnd   = 0x09
	amfStrictArray = 0x0a
	amfDate        = 0x0b
	amfLongString  = 0x0c
)

// maxAMFDepth bounds nesting so hostile script data cannot exhaust the stack.
const maxAMFDepth = 32

// Property is one key and value of an AMF object or ECMA array, kept in
// order because players read onMetaData in order.
type Property struct {
	Key   string
	Value any
}

// AMF values decode to: float64, bool, string, []Property (object and ECMA
// array), []any (strict array), nil (null and undefined) and time.Time.

// AppendAMF appends v encoded as AMF0. It supports the types decoding
// produces, plus int and int64 as numbers.
func AppendAMF(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, amfNull), nil
	case float64:
		return appendNumber(dst, v), nil
	case int:
		return appendNumber(dst, float64(v)), nil
	case int64:
		return appendNumber(dst, float64(v)), nil
	case bool:
		b := byte(0)
		if v {
			b = 1
		}
		return append(dst, amfBoolean, b), nil
	case string:
		if len(v) > math.MaxUint16 {
			dst = append(dst, amfLongString)
			dst = binary.BigEndian.AppendUint32(dst, uint32(len(v)))
			return append(dst, v...), nil
		}
		dst = append(dst, amfString)
		return appendKey(dst, v), nil
	case time.Time:
		dst = append(dst, amfDate)
		dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(float64(v.UnixMilli())))
		return append(dst, 0, 0), nil
	case []any:
		dst = append(dst, amfStrictArray)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(v)))
		var err error
		for _, e := range v {
			if dst, err = AppendAMF(dst, e); err != nil {
				return nil, err
			}
		}
		return dst, nil
	case []Property:
		dst = append(dst, amfECMAArray)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(v)))
		return appendProperties(dst, v)
	}
	return nil, fmt.Errorf("amf: cannot encode %T", v)
}

func appendNumber(dst []byte, f float64) []byte {
	dst = append(dst, amfNumber)
	return binary.BigEndian.AppendUint64(dst, math.Float64bits(f))
}

func appendKey(dst []byte, k string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(k)))
	return append(dst, k...)
}

func appendProperties(dst []byte, props []Property) ([]byte, error) {
	var err error
	for _, p := range props {
		if len(p.Key) > math.MaxUint16 {
			return nil, fmt.Errorf("amf: key of %d bytes", len(p.Key))
		}
		dst = appendKey(dst, p.Key)
		if dst, err = AppendAMF(dst, p.Value); err != nil {
			return nil, err
		}
	}
	return append(dst, 0, 0, amfObjectEnd), nil
}

// ErrBadAMF is wrapped by every AMF decoding error.
var ErrBadAMF = errors.New("bad AMF data")

// DecodeAMF decodes one AMF0 value from b and returns it with the bytes
// after it. Malformed or truncated input returns an error wrapping ErrBadAMF,
// never a panic.
func DecodeAMF(b []byte) (any, []byte, error) {
	return decodeAMF(b, 0)
}

func decodeAMF(b []byte, depth int) (any, []byte, error) {
	if depth > maxAMFDepth {
		return nil, nil, fmt.Errorf("%w: nested deeper than %d", ErrBadAMF, maxAMFDepth)
	}
	if len(b) == 0 {
		return nil, nil, fmt.Errorf("%w: no type marker", ErrBadAMF)
	}
	marker, b := b[0], b[1:]
	switch marker {
	case amfNumber:
		if len(b) < 8 {
			return nil, nil, fmt.Errorf("%w: short number", ErrBadAMF)
		}
		return math.Float64frombits(binary.BigEndian.Uint64(b)), b[8:], nil
	case amfBoolean:
		if len(b) < 1 {
			return nil, nil, fmt.Errorf("%w: short boolean", ErrBadAMF)
		}
		return b[0] != 0, b[1:], nil
	case amfString:
		return decodeKey(b)
	case amfLongString:
		if len(b) < 4 {
			return nil, nil, fmt.Errorf("%w: short long string", ErrBadAMF)
		}
		n := binary.BigEndian.Uint32(b)
		if uint64(n) > uint64(len(b)-4) {
			return nil, nil, fmt.Errorf("%w: long string runs past the data", ErrBadAMF)
		}
		return string(b[4 : 4+n]), b[4+n:], nil
	case amfNull, amfUndefined:
		return nil, b, nil
	case amfDate:
		if len(b) < 10 {
			return nil, nil, fmt.Errorf("%w: short date", ErrBadAMF)
		}
		ms := math.Float64frombits(binary.BigEndian.Uint64(b))
		if math.IsNaN(ms) || math.IsInf(ms, 0) {
			ms = 0
		}
		return time.UnixMilli(int64(ms)).UTC(), b[10:], nil
	case amfObject:
		return decodeProperties(b, depth)
	case amfECMAArray:
		if len(b) < 4 {
			return nil, nil, fmt.Errorf("%w: short ECMA array", ErrBadAMF)
		}
		// The count is a hint that encoders get wrong; the end marker is
		// what counts.
		return decodeProperties(b[4:], depth)
	case amfStrictArray:
		if len(b) < 4 {
			return nil, nil, fmt.Errorf("%w: short strict array", ErrBadAMF)
		}
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		// Every element takes at least one byte: a count larger than the
		// data is a lie, so do not allocate for it.
		if uint64(n) > uint64(len(b)) {
			return nil, nil, fmt.Errorf("%w: strict array of %d in %d bytes", ErrBadAMF, n, len(b))
		}
		out := make([]any, 0, n)
		for range n {
			v, rest, err := decodeAMF(b, depth+1)
			if err != nil {
				return nil, nil, err
			}
			out, b = append(out, v), rest
		}
		return out, b, nil
	}
	return nil, nil, fmt.Errorf("%w: unknown type marker 0x%02x", ErrBadAMF, marker)
}

func decodeKey(b []byte) (string, []byte, error) {
	if len(b) < 2 {
		return "", nil, fmt.Errorf("%w: short string", ErrBadAMF)
	}
	n := int(binary.BigEndian.Uint16(b))
	if n > len(b)-2 {
		return "", nil, fmt.Errorf("%w: string runs past the data", ErrBadAMF)
	}
	return string(b[2 : 2+n]), b[2+n:], nil
}

func decodeProperties(b []byte, depth int) (any, []byte, error) {
	var props []Property
	for {
		if len(b) >= 3 && b[0] == 0 && b[1] == 0 && b[2] == amfObjectEnd {
			return props, b[3:], nil
		}
		key, rest, err := decodeKey(b)
		if err != nil {
			return nil, nil, err
		}
		v, rest, err := decodeAMF(rest, depth+1)
		if err != nil {
			return nil, nil, err
		}
		props = append(props, Property{Key: key, Value: v})
		b = rest
	}
}

// Lookup returns the value of key in props.
func Lookup(props []Property, key string) (any, bool) {
	for _, p := range props {
		if p.Key == key {
			return p.Value, true
		}
	}
	return nil, false
}
