package bilibili

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRoomRef(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"5440", 5440},
		{" 1 ", 1},
		{"https://live.bilibili.com/5440", 5440},
		{"live.bilibili.com/5440?spm_id_from=333.1007&broadcast_type=0", 5440},
		{"http://live.bilibili.com/5440/#frag", 5440},
		{"https://live.bilibili.com/h5/5440", 5440},
		{"https://LIVE.bilibili.com/blanc/5440?liteVersion=true", 5440},
	}
	for _, tt := range tests {
		got, err := ParseRoomRef(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseRoomRef(%q) = %d, %v, want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestParseRoomRefRejects(t *testing.T) {
	for name, in := range map[string]string{
		"empty":       "",
		"word":        "abc",
		"negative":    "-5",
		"zero":        "0",
		"huge":        "99999999999999999999999",
		"too large":   "1099511627776",
		"other host":  "https://evil.example/5440",
		"no number":   "https://live.bilibili.com/",
		"mixed":       "12ab",
		"decimal":     "1.5",
		"long spam":   strings.Repeat("房", 1000),
		"space inner": "54 40",
	} {
		t.Run(name, func(t *testing.T) {
			id, err := ParseRoomRef(in)
			if !errors.Is(err, ErrBadRoom) {
				t.Fatalf("ParseRoomRef(%q) = %d, %v, want ErrBadRoom", in, id, err)
			}
			if len(err.Error()) > 120 {
				t.Errorf("error is %d bytes long; want a short message", len(err.Error()))
			}
		})
	}
}
