package flv

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestAMFRoundTrip(t *testing.T) {
	values := []any{
		1.5, true, false, "onMetaData", strings.Repeat("长", 30000), nil,
		time.UnixMilli(1732400000123).UTC(),
		[]any{1.0, "a", []any{}},
		[]Property{{"duration", 12.5}, {"nested", []Property{{"x", 1.0}}}, {"list", []any{2.0, 3.0}}},
	}
	for _, v := range values {
		enc, err := AppendAMF(nil, v)
		if err != nil {
			t.Fatalf("encode %T: %v", v, err)
		}
		got, rest, err := DecodeAMF(enc)
		if err != nil || len(rest) != 0 {
			t.Fatalf("decode %T: %v (%d bytes left)", v, err, len(rest))
		}
		if !reflect.DeepEqual(got, v) {
			t.Errorf("round trip of %T = %#v, want %#v", v, got, v)
		}
	}
}

func TestDecodeAMFMalformed(t *testing.T) {
	tests := map[string][]byte{
		"empty":                 {},
		"short number":          {amfNumber, 1, 2},
		"string past the end":   {amfString, 0, 10, 'a'},
		"array count too large": {amfStrictArray, 0xff, 0xff, 0xff, 0xff, amfNull},
		"object without end":    {amfObject, 0, 1, 'k', amfNull},
		"unknown marker":        {0x42},
		"too deep":              []byte(strings.Repeat("\x0a\x00\x00\x00\x01", maxAMFDepth+2)),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if _, _, err := DecodeAMF(in); !errors.Is(err, ErrBadAMF) {
				t.Errorf("DecodeAMF = %v, want ErrBadAMF", err)
			}
		})
	}
}

func FuzzDecodeAMF(f *testing.F) {
	meta, _ := AppendAMF(nil, []Property{{"duration", 1.0}, {"keyframes", []Property{{"times", []any{0.0, 1.0}}}}})
	f.Add(meta)
	f.Add([]byte{amfStrictArray, 0, 0, 0, 2, amfBoolean, 1, amfDate, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{amfLongString, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		v, rest, err := DecodeAMF(data)
		if err != nil {
			if !errors.Is(err, ErrBadAMF) {
				t.Fatalf("error %v does not wrap ErrBadAMF", err)
			}
			return
		}
		if len(rest) > len(data) {
			t.Fatal("rest longer than input")
		}
		// Whatever decodes must encode again.
		if _, err := AppendAMF(nil, v); err != nil {
			t.Fatalf("decoded %#v does not encode: %v", v, err)
		}
	})
}
