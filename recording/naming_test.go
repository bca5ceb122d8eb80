package recording

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestFileNameRender(t *testing.T) {
	start := time.Date(2026, 11, 24, 9, 5, 7, 0, time.UTC)
	tests := []struct {
		name     string
		fn       FileName
		template string
		want     string
	}{
		{"default", FileName{RoomID: 5440, Anchor: "主播", Title: "今晚打游戏", Start: start, Part: 1}, "", "20261124-090507-主播-今晚打游戏-p001"},
		{"slash in title", FileName{RoomID: 5440, Anchor: "a", Title: "PK 1/2 ../../etc", Start: start, Part: 2}, "", "20261124-090507-a-PK 1_2 ._._etc-p002"},
		{"short id placeholder", FileName{RoomID: 5440, ShortID: 1, Start: start}, "{short}-{room}", "1-5440"},
		{"short id missing", FileName{RoomID: 5440, Start: start}, "{short}", "5440"},
		{"template slash", FileName{RoomID: 5440, Start: start}, "{room}/{date}", "5440_20261124"},
		{"windows characters", FileName{Title: `a:b*c?"d<e>f|g\h`, Start: start}, "{title}", "a_b_c__d_e_f_g_h"},
		{"control characters", FileName{Title: "a\x00b\nc\td", Start: start}, "{title}", "a_b_c_d"},
		{"reserved name", FileName{Title: "con", Start: start}, "{title}", "_con"},
		{"only dots", FileName{Title: "..", Start: start}, "{title}", "_"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.fn.Render(tt.template); got != tt.want {
				t.Errorf("Render(%q) = %q, want %q", tt.template, got, tt.want)
			}
		})
	}
}

func TestSanitizeNameBoundsLength(t *testing.T) {
	got := SanitizeName(strings.Repeat("标题", 200))
	if len(got) > maxNameBytes {
		t.Errorf("len = %d bytes, want at most %d", len(got), maxNameBytes)
	}
	if !utf8.ValidString(got) {
		t.Errorf("result %q is not valid UTF-8: cut inside a character", got)
	}
}

func FuzzSanitizeName(f *testing.F) {
	for _, s := range []string{"", "..", "a/b", "CON.txt", "标题", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := SanitizeName(s)
		switch {
		case got == "" || got == "." || got == "..":
			t.Fatalf("SanitizeName(%q) = %q, not a usable name", s, got)
		case strings.ContainsAny(got, `/\`), strings.Contains(got, ".."):
			t.Fatalf("SanitizeName(%q) = %q, can leave its directory", s, got)
		case len(got) > maxNameBytes+1:
			t.Fatalf("SanitizeName(%q) is %d bytes long", s, len(got))
		case !utf8.ValidString(got):
			t.Fatalf("SanitizeName(%q) = %q, invalid UTF-8", s, got)
		}
	})
}

func TestCheckFileTemplate(t *testing.T) {
	for _, tt := range []struct {
		template string
		wantErr  string // "" for a good template
	}{
		{DefaultFileTemplate, ""},
		{"{room}-{part}", ""},
		{"录像 {anchor} {date}_{time} 第{part}段", ""},
		{"{date}-{title}", "needs {part}"},
		{"{room}/{part}", "names a file, not a path"},
		{`{room}\{part}`, "names a file, not a path"},
		{"../{part}", "names a file, not a path"},
		{"{room}:{part}", "names a file, not a path"},
		{"{part}\x01", "names a file, not a path"},
		{"{streamer}-{part}", "{streamer} is not a placeholder"},
	} {
		err := CheckFileTemplate(tt.template)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("CheckFileTemplate(%q) = %v, want it accepted", tt.template, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("CheckFileTemplate(%q) = %v, want an error about %q", tt.template, err, tt.wantErr)
		}
	}
}
