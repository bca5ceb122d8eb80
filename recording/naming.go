package recording

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// DefaultFileTemplate names a recording from its start time, anchor, title
// and part number, so files sort by time in a directory listing.
const DefaultFileTemplate = "{date}-{time}-{anchor}-{title}-p{part}"

// maxNameBytes bounds a file name well under the 255-byte limit of common
// file systems, leaving room for the ".flv.part" suffix.
const maxNameBytes = 200

// CheckFileTemplate reports whether template makes usable file names: it
// needs {part}, or two files of one broadcast would collide, and its own
// text may not hold a path separator or a character Windows rejects
// (values are sanitized; the template's text is the operator's).
func CheckFileTemplate(template string) error {
	if !strings.Contains(template, "{part}") {
		return errors.New("needs {part}, so the files of one broadcast get different names")
	}
	literal := placeholder.ReplaceAllString(template, "")
	if strings.ContainsAny(literal, `/\:*?"<>|`) || strings.Contains(literal, "..") || strings.ContainsFunc(literal, unicode.IsControl) {
		return errors.New(`may not contain / \ : * ? " < > | or "..": it names a file, not a path`)
	}
	if m := unknownPlaceholder(template); m != "" {
		return fmt.Errorf("%s is not a placeholder; use {room} {short} {anchor} {title} {date} {time} {part}", m)
	}
	return nil
}

// placeholder matches the placeholders Render fills in; anyPlaceholder
// anything that looks like one.
var (
	placeholder    = regexp.MustCompile(`\{(room|short|anchor|title|date|time|part)\}`)
	anyPlaceholder = regexp.MustCompile(`\{[^{}]*\}`)
)

func unknownPlaceholder(template string) string {
	return anyPlaceholder.FindString(placeholder.ReplaceAllString(template, ""))
}

// FileName is what a recorded file's name is made from.
type FileName struct {
	RoomID, ShortID int64
	Anchor, Title   string
	Start           time.Time
	Part            int
}

// Render fills in a file name template with n's values. Placeholders:
// {room} (real id), {short} (short id, or the real id when there is none),
// {anchor}, {title}, {date} (20060102), {time} (150405, in Start's location)
// and {part} (001, 002, …). Every value is sanitized, so a title can never add
// a directory or a name that Windows rejects. The result has no extension; an
// empty template uses DefaultFileTemplate.
func (n FileName) Render(template string) string {
	if template == "" {
		template = DefaultFileTemplate
	}
	short := n.ShortID
	if short == 0 {
		short = n.RoomID
	}
	r := strings.NewReplacer(
		"{room}", strconv.FormatInt(n.RoomID, 10),
		"{short}", strconv.FormatInt(short, 10),
		"{anchor}", SanitizeName(n.Anchor),
		"{title}", SanitizeName(n.Title),
		"{date}", n.Start.Format("20060102"),
		"{time}", n.Start.Format("150405"),
		"{part}", fmt.Sprintf("%03d", n.Part),
	)
	return SanitizeName(r.Replace(template))
}

// SanitizeName makes s safe as one path element on Linux, macOS and Windows:
// path separators, characters Windows rejects and control characters become
// "_", runs of dots cannot form "..", leading and trailing dots and spaces
// are trimmed, reserved device names are prefixed, and the length is cut to
// maxNameBytes on a character boundary. An empty result becomes "_".
func SanitizeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == utf8.RuneError, unicode.IsControl(r), strings.ContainsRune(`/\:*?"<>|`, r):
			b.WriteByte('_')
		case unicode.IsSpace(r):
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	out := b.String()
	for strings.Contains(out, "..") {
		out = strings.ReplaceAll(out, "..", ".")
	}
	out = truncateUTF8(out, maxNameBytes)
	out = strings.Trim(out, ". ")
	if out == "" {
		return "_"
	}
	if isWindowsReserved(out) {
		out = "_" + out
	}
	return out
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// isWindowsReserved reports whether name, ignoring its extension, is a DOS
// device name that Windows will not create as a file.
func isWindowsReserved(name string) bool {
	base := strings.ToUpper(strings.TrimSuffix(name, filepath.Ext(name)))
	switch base {
	case "CON", "PRN", "AUX", "NUL":
		return true
	}
	if len(base) == 4 && (strings.HasPrefix(base, "COM") || strings.HasPrefix(base, "LPT")) {
		return base[3] >= '1' && base[3] <= '9'
	}
	return false
}
