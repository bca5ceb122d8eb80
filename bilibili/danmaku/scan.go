package danmaku

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"time"
	"unicode/utf8"
)

// DANMU_MSG is most of what a busy room sends, and its info array is long
// (medals, levels, emoji data) while a recorder needs five of its values.
// Decoding it with encoding/json costs more than everything else on the
// receive path together, so it is read here by a small scanner that skips
// what it does not need. Anything unexpected falls back to encoding/json.

var errScan = errors.New("unexpected JSON")

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i] ('"').
func skipString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, errScan
}

// skipValue returns the index just past the JSON value starting at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errScan
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '[', '{':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := skipString(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '[', '{':
				depth++
			case ']', '}':
				if depth--; depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errScan
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != ']' && b[j] != '}' && b[j] != ' ' && b[j] != '\n' && b[j] != '\r' && b[j] != '\t' {
		j++
	}
	if j == i {
		return 0, errScan
	}
	return j, nil
}

// eachElement calls fn with the start of each element of the array at b[i]
// ('[') until fn returns false, and returns the index just past the array
// when it reads it all.
func eachElement(b []byte, i int, fn func(n, start int) (bool, error)) (int, error) {
	if i >= len(b) || b[i] != '[' {
		return 0, errScan
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for n := 0; ; n++ {
		more, err := fn(n, i)
		if err != nil || !more {
			return 0, err
		}
		end, err := skipValue(b, i)
		if err != nil {
			return 0, err
		}
		i = skipSpace(b, end)
		if i >= len(b) {
			return 0, errScan
		}
		if b[i] == ']' {
			return i + 1, nil
		}
		if b[i] != ',' {
			return 0, errScan
		}
		i = skipSpace(b, i+1)
	}
}

// scanInt reads the number (or numeric string) at b[i].
func scanInt(b []byte, i int) (int64, error) {
	end, err := skipValue(b, i)
	if err != nil {
		return 0, err
	}
	return parseNumber(b[i:end]), nil
}

// parseNumber reads a JSON number or numeric string as an integer; anything
// else is 0. Bilibili sends some numbers as strings and some as floats.
func parseNumber(raw []byte) int64 {
	raw = bytes.Trim(raw, `"`)
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return n
	}
	if f, err := strconv.ParseFloat(string(raw), 64); err == nil && f >= -1<<62 && f <= 1<<62 {
		return int64(f)
	}
	return 0
}

// scanString reads the string at b[i].
func scanString(b []byte, i int) (string, error) {
	if i >= len(b) || b[i] != '"' {
		return "", errScan
	}
	end, err := skipString(b, i)
	if err != nil {
		return "", err
	}
	raw := b[i+1 : end-1]
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return string(raw), nil
	}
	var s string
	err = json.Unmarshal(b[i:end], &s)
	return s, err
}

var infoKey = []byte(`"info"`)

// scanDanmaku reads a DANMU_MSG body's info[0][1..4], info[1] and
// info[2][0..1].
func scanDanmaku(body []byte) (Danmaku, error) {
	var d Danmaku
	k := bytes.Index(body, infoKey)
	if k < 0 {
		return d, errScan
	}
	i := skipSpace(body, k+len(infoKey))
	if i >= len(body) || body[i] != ':' {
		return d, errScan
	}
	i = skipSpace(body, i+1)
	var sentMs int64
	seen := 0
	_, err := eachElement(body, i, func(n, start int) (bool, error) {
		seen = n + 1
		switch n {
		case 0:
			_, err := eachElement(body, start, func(m, at int) (bool, error) {
				v, err := scanInt(body, at)
				switch m {
				case 0:
					return true, nil
				case 1:
					d.Mode = int(v)
				case 2:
					d.FontSize = int(v)
				case 3:
					d.Color = int(v)
				case 4:
					sentMs = v
				}
				return m < 4, err
			})
			return true, err
		case 1:
			s, err := scanString(body, start)
			d.Text = s
			return true, err
		case 2:
			_, err := eachElement(body, start, func(m, at int) (bool, error) {
				if m == 0 {
					uid, err := scanInt(body, at)
					d.UID = uid
					return true, err
				}
				s, err := scanString(body, at)
				d.Uname = s
				return false, err
			})
			return false, err
		}
		return false, nil
	})
	if err != nil {
		return Danmaku{}, err
	}
	if seen < 3 {
		return Danmaku{}, errScan
	}
	if sentMs > 0 {
		d.SentAt = time.UnixMilli(sentMs)
	}
	return d, nil
}
