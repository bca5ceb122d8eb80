package bilibili

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"roomrec"
)

// ErrBadRoom is wrapped by ParseRoomRef's errors, which also carry a
// *roomrec.Error (EINVALID) whose message, a clause such as `"x" is not a
// room number`, is safe to show to the user who typed the room.
var ErrBadRoom = errors.New("not a room")

// maxRoomID bounds room numbers: Bilibili's are well under a billion today,
// and a bound keeps absurd input from reaching the API.
const maxRoomID = 1<<40 - 1

// ParseRoomRef returns the room number in s, which is a room number (short
// or real) or a live.bilibili.com/<n> URL, with or without scheme, query or
// fragment. It does not ask Bilibili whether the room exists. The error
// wraps ErrBadRoom and says what was wrong.
func ParseRoomRef(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, badRoom("no room given; use a room number or a live.bilibili.com link")
	}
	digits := s
	if strings.ContainsAny(s, "/.:") {
		raw := s
		if !strings.Contains(raw, "://") {
			raw = "https://" + raw
		}
		u, err := url.Parse(raw)
		if err != nil || !isLiveHost(u.Hostname()) {
			return 0, badRoom("%q is not a live.bilibili.com link", shorten(s))
		}
		digits = strings.Trim(u.Path, "/")
		if i := strings.IndexByte(digits, '/'); i >= 0 {
			// live.bilibili.com/h5/123 and live.bilibili.com/blanc/123 are
			// the same room as live.bilibili.com/123.
			digits = digits[strings.LastIndexByte(digits, '/')+1:]
		}
	}
	if digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, badRoom("%q is not a room number", shorten(s))
	}
	id, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || id <= 0 || id > maxRoomID {
		return 0, badRoom("%q is out of the range of room numbers", shorten(s))
	}
	return id, nil
}

// badRoom is an error wrapping ErrBadRoom and an EINVALID *roomrec.Error
// with the formatted message.
func badRoom(format string, args ...any) error {
	return fmt.Errorf("%w: %w", ErrBadRoom, roomrec.Errorf(roomrec.EINVALID, format, args...))
}

func isLiveHost(h string) bool {
	h = strings.ToLower(h)
	return h == "live.bilibili.com" || h == "m.live.bilibili.com" || h == "www.live.bilibili.com"
}

// shorten keeps error messages short when the input is a wall of text.
func shorten(s string) string {
	if len(s) <= 40 {
		return s
	}
	i := 40
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i] + "…"
}
