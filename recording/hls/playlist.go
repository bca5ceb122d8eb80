// Package hls reads the HLS playlists Bilibili serves for a live room and
// keeps track of which of their segments a recorder has already taken.
//
// It parses text handed to it as an io.Reader and returns URLs; fetching the
// playlist and its segments belongs to package recording.
//
// What Bilibili's media playlists look like (from real ones quoted by other
// recorders: Xinrea/bili-shadowreplay src-tauri/src/recorder/bilibili.rs test
// parse_fmp4_playlist, a capture of room 6 in a research note found by
// searching public code for "EXT-BILI-AUX", and qydysky/bili_danmu
// Reply/F/parseM3u8/test.m3u8 for the master playlist):
//
//	#EXTM3U
//	#EXT-X-VERSION:7
//	#EXT-X-START:TIME-OFFSET=0
//	#EXT-X-MEDIA-SEQUENCE:323066244
//	#EXT-X-TARGETDURATION:1
//	#EXT-X-MAP:URI="h1758715459.m4s"
//	#EXT-BILI-AUX:97d350|K|7d1e3|fe1425ab
//	#EXTINF:1.00,7d1e3|fe1425ab
//	323066244.m4s
//	#EXT-BILI-AUX:97d706|N|757d4|c9094969
//	#EXTINF:1.00,757d4|c9094969
//	323066245.m4s
//
// The EXTINF title is the segment's size and CRC-32 in hex. EXT-BILI-AUX is
// Bilibili's own: <start>|<K or N>|<size>|<crc32>, all hex but the flag.
// The start is in milliseconds on the stream's media clock: consecutive
// values differ by the segment durations (0x97d706-0x97d350 = 950 ms), and
// in the room-6 capture 0x1250faff ms (85.4 h) is the same 85.4 h that
// ffprobe reported as the fMP4 segments' start time. K marks a segment that
// starts with a keyframe: Bilibili cuts a short segment (EXTINF 0.17) before
// each K one.
package hls

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// MaxPlaylistBytes bounds what Parse reads. A Bilibili media playlist is
// under 2 KiB and a master playlist with every CDN under 16 KiB.
const MaxPlaylistBytes = 1 << 20

// ErrNotPlaylist is returned for a body that does not start with #EXTM3U,
// such as the HTML or JSON error page a CDN sends instead.
var ErrNotPlaylist = errors.New("not an HLS playlist")

// ErrMalformed is wrapped by the errors Parse returns for a playlist whose
// structure is broken: a number that does not parse, a truncated body.
var ErrMalformed = errors.New("malformed HLS playlist")

// ErrCorrupt is what a failed Segment.Verify matches with errors.Is.
var ErrCorrupt = errors.New("segment does not match its playlist check")

// Playlist is a parsed playlist: a media playlist has Segments, a master
// playlist (one that lists #EXT-X-STREAM-INF variants) has Variants.
type Playlist struct {
	Version        int
	TargetDuration time.Duration
	MediaSequence  uint64 // sequence number of Segments[0]
	Segments       []Segment
	EndList        bool // #EXT-X-ENDLIST: the broadcast is over, nothing more will be added

	// Variants of a master playlist, best first: highest BILI-QN, then
	// highest BANDWIDTH; ties keep the playlist's order, which is
	// Bilibili's CDN priority.
	Variants []Variant
}

// IsMaster reports whether p is a master playlist, whose variants must be
// fetched instead.
func (p *Playlist) IsMaster() bool { return len(p.Variants) > 0 }

// Variant is one #EXT-X-STREAM-INF entry of a master playlist.
type Variant struct {
	URI       string // resolved against the playlist URL
	Bandwidth int64
	QN        int    // Bilibili's quality number (BILI-QN), 0 if absent
	Codecs    string // e.g. "avc1.640028,mp4a.40.2"
}

// Segment is one media segment of a playlist.
type Segment struct {
	Seq           uint64 // media sequence number: MediaSequence + index
	URI           string // resolved against the playlist URL
	Duration      time.Duration
	Map           string // resolved URI of the #EXT-X-MAP (init segment) in force; "" if none
	Discontinuity bool   // #EXT-X-DISCONTINUITY before this segment

	// Size and CRC32 (IEEE) of the segment's bytes, from Bilibili's EXTINF
	// title "<hex size>|<hex crc32>" or, failing that, from EXT-BILI-AUX.
	// HasCheck says whether they were given.
	Size     int64
	CRC32    uint32
	HasCheck bool

	// Aux is the raw value of the #EXT-BILI-AUX tag before the segment, ""
	// if none. When it has the expected four fields, HasAux is set, Start
	// is the segment's start on the stream's media clock and Keyframe says
	// the segment starts with a keyframe.
	Aux      string
	HasAux   bool
	Start    time.Duration
	Keyframe bool
}

// VerifyError says how a segment's bytes differ from what its playlist
// declared. It matches ErrCorrupt.
type VerifyError struct {
	Seq                 uint64
	WantSize, GotSize   int64
	WantCRC32, GotCRC32 uint32
}

func (e *VerifyError) Error() string {
	if e.WantSize != e.GotSize {
		return fmt.Sprintf("segment %d: %d bytes, playlist says %d", e.Seq, e.GotSize, e.WantSize)
	}
	return fmt.Sprintf("segment %d: crc32 %08x, playlist says %08x", e.Seq, e.GotCRC32, e.WantCRC32)
}

func (e *VerifyError) Is(target error) bool { return target == ErrCorrupt }

// Verify checks b, the downloaded segment, against the size and CRC-32 its
// playlist declared. It returns a *VerifyError if they differ, and nil if
// they match or the playlist declared none.
func (s Segment) Verify(b []byte) error {
	if !s.HasCheck {
		return nil
	}
	got := int64(len(b))
	if got != s.Size {
		return &VerifyError{Seq: s.Seq, WantSize: s.Size, GotSize: got, WantCRC32: s.CRC32}
	}
	if sum := crc32.ChecksumIEEE(b); sum != s.CRC32 {
		return &VerifyError{Seq: s.Seq, WantSize: s.Size, GotSize: got, WantCRC32: s.CRC32, GotCRC32: sum}
	}
	return nil
}

// Parse reads a playlist and resolves its URIs against base, the URL it was
// fetched from (nil leaves them as written).
//
// A relative segment, map or variant URI that has no query of its own gets
// base's query. Bilibili signs the playlist URL (expires=…, sign=…) and
// lists segments by bare name ("323066244.m4s"); plain RFC 3986 resolution,
// as a browser player does it, would fetch them unsigned. Recorders that
// work carry the query over: Xinrea/bili-shadowreplay appends the
// playlist's whole query to every segment and init URL, qydysky/bili_danmu
// appends its trid parameter only. Carrying all of it works whichever the
// CDN checks. A URI with a host of its own keeps only its own query: the
// signature is for base's host.
//
// Unknown tags and comments are ignored. Parse returns ErrNotPlaylist if the
// body is not a playlist and an error wrapping ErrMalformed if a tag it
// relies on does not parse or the body ends inside a segment's tags.
func Parse(r io.Reader, base *url.URL) (*Playlist, error) {
	body, err := io.ReadAll(io.LimitReader(r, MaxPlaylistBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read playlist: %w", err)
	}
	if len(body) > MaxPlaylistBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxPlaylistBytes)
	}
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	if !bytes.HasPrefix(body, []byte("#EXTM3U")) {
		// Some Bilibili CDNs answer with the playlist base64-encoded;
		// qydysky/bili_danmu decodes any body without a '#'.
		dec, derr := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(body)))
		if derr != nil || !bytes.HasPrefix(dec, []byte("#EXTM3U")) {
			return nil, ErrNotPlaylist
		}
		body = dec
	}
	p := parser{base: base}
	return p.parse(body)
}

type parser struct {
	base *url.URL
	pl   Playlist
	line int

	pending   bool     // a tag for the next segment was seen since the last URI
	infCheck  check    // from the #EXTINF title of the next segment
	auxCheck  check    // from its #EXT-BILI-AUX
	mapURI    string   // the #EXT-X-MAP in force
	streamInf *Variant // an #EXT-X-STREAM-INF waiting for its URI
}

func (p *parser) parse(body []byte) (*Playlist, error) {
	var next Segment // what the tags so far say about the next segment
	for len(body) > 0 {
		var raw []byte
		raw, body, _ = bytes.Cut(body, []byte("\n"))
		p.line++
		line := strings.TrimSpace(string(raw))
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, "#EXT"):
			if err := p.tag(line, &next); err != nil {
				return nil, fmt.Errorf("%w: line %d: %v", ErrMalformed, p.line, err)
			}
			continue
		case strings.HasPrefix(line, "#"):
			continue // a comment
		}
		// A URI line.
		uri, err := p.resolve(line)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrMalformed, p.line, err)
		}
		if p.streamInf != nil {
			v := *p.streamInf
			v.URI = uri
			p.pl.Variants = append(p.pl.Variants, v)
			p.streamInf = nil
			continue
		}
		next.URI = uri
		next.Map = p.mapURI
		if c := p.infCheck; c.ok || p.auxCheck.ok {
			if !c.ok {
				c = p.auxCheck
			}
			next.Size, next.CRC32, next.HasCheck = c.size, c.sum, true
		}
		p.infCheck, p.auxCheck = check{}, check{}
		next.Seq = p.pl.MediaSequence + uint64(len(p.pl.Segments))
		p.pl.Segments = append(p.pl.Segments, next)
		next, p.pending = Segment{}, false
	}
	if p.streamInf != nil {
		return nil, fmt.Errorf("%w: #EXT-X-STREAM-INF with no URI after it", ErrMalformed)
	}
	if p.pending {
		// The body ends inside a segment's tags: most likely a
		// truncated response, so the last segment cannot be trusted.
		return nil, fmt.Errorf("%w: ends after segment tags with no URI", ErrMalformed)
	}
	if len(p.pl.Variants) > 0 {
		p.pl.Segments = nil
		sort.SliceStable(p.pl.Variants, func(i, j int) bool {
			a, b := p.pl.Variants[i], p.pl.Variants[j]
			if a.QN != b.QN {
				return a.QN > b.QN
			}
			return a.Bandwidth > b.Bandwidth
		})
	}
	return &p.pl, nil
}

// tag applies one #EXT line.
func (p *parser) tag(line string, next *Segment) error {
	name, value, _ := strings.Cut(line, ":")
	switch name {
	case "#EXTM3U":
	case "#EXT-X-VERSION":
		v, err := strconv.Atoi(value)
		if err != nil {
			return fmt.Errorf("version %q", value)
		}
		p.pl.Version = v
	case "#EXT-X-TARGETDURATION":
		d, err := parseDuration(value)
		if err != nil {
			return fmt.Errorf("target duration: %v", err)
		}
		p.pl.TargetDuration = d
	case "#EXT-X-MEDIA-SEQUENCE":
		if len(p.pl.Segments) > 0 {
			return errors.New("#EXT-X-MEDIA-SEQUENCE after the first segment")
		}
		n, err := strconv.ParseUint(value, 10, 64)
		if err != nil {
			return fmt.Errorf("media sequence %q", value)
		}
		p.pl.MediaSequence = n
	case "#EXT-X-MAP":
		attrs, err := parseAttributes(value)
		if err != nil {
			return fmt.Errorf("map: %v", err)
		}
		uri, ok := attrs["URI"]
		if !ok || uri == "" {
			return errors.New("map without URI")
		}
		if p.mapURI, err = p.resolve(uri); err != nil {
			return fmt.Errorf("map: %v", err)
		}
	case "#EXTINF":
		durText, title, _ := strings.Cut(value, ",")
		d, err := parseDuration(durText)
		if err != nil {
			return fmt.Errorf("segment duration: %v", err)
		}
		next.Duration = d
		p.infCheck.size, p.infCheck.sum, p.infCheck.ok = parseCheck(title)
		p.pending = true
	case "#EXT-X-DISCONTINUITY":
		next.Discontinuity = true
		p.pending = true
	case "#EXT-BILI-AUX":
		next.Aux = value
		var c check
		next.Start, next.Keyframe, c.size, c.sum, c.ok = parseAux(value)
		next.HasAux, p.auxCheck = c.ok, c
		p.pending = true
	case "#EXT-X-ENDLIST":
		p.pl.EndList = true
	case "#EXT-X-STREAM-INF":
		attrs, err := parseAttributes(value)
		if err != nil {
			return fmt.Errorf("stream inf: %v", err)
		}
		v := &Variant{Codecs: attrs["CODECS"]}
		v.Bandwidth, _ = strconv.ParseInt(attrs["BANDWIDTH"], 10, 64)
		v.QN, _ = strconv.Atoi(attrs["BILI-QN"])
		p.streamInf = v
	}
	return nil
}

// resolve turns a URI of the playlist into the URL to fetch, carrying the
// playlist's query to same-host URIs that have none (see Parse).
func (p *parser) resolve(uri string) (string, error) {
	if i := strings.IndexFunc(uri, func(r rune) bool { return r <= ' ' || r == 0x7f }); i >= 0 {
		return "", fmt.Errorf("uri %q: a space or control character", uri)
	}
	ref, err := url.Parse(uri)
	if err != nil {
		return "", fmt.Errorf("uri %q: %v", uri, err)
	}
	if p.base == nil {
		return uri, nil
	}
	u := p.base.ResolveReference(ref)
	if ref.Scheme == "" && ref.Host == "" && ref.RawQuery == "" && !ref.ForceQuery {
		u.RawQuery = p.base.RawQuery
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String(), nil
}

// check is a segment's declared size and CRC-32.
type check struct {
	size int64
	sum  uint32
	ok   bool
}

// parseCheck reads Bilibili's "<hex size>|<hex crc32>" title.
func parseCheck(title string) (size int64, sum uint32, ok bool) {
	sizeText, sumText, found := strings.Cut(strings.TrimSpace(title), "|")
	if !found {
		return 0, 0, false
	}
	s, err1 := strconv.ParseInt(sizeText, 16, 64)
	c, err2 := strconv.ParseUint(sumText, 16, 32)
	if err1 != nil || err2 != nil || s < 0 {
		return 0, 0, false
	}
	return s, uint32(c), true
}

// parseAux reads "<hex start ms>|K|<hex size>|<hex crc32>" (N instead of K
// for a segment that does not start with a keyframe).
func parseAux(v string) (start time.Duration, key bool, size int64, sum uint32, ok bool) {
	f := strings.Split(v, "|")
	if len(f) != 4 || (f[1] != "K" && f[1] != "N") {
		return 0, false, 0, 0, false
	}
	ms, err := strconv.ParseUint(f[0], 16, 64)
	if err != nil || ms > uint64(maxSeconds)*1000 {
		return 0, false, 0, 0, false
	}
	size, sum, ok = parseCheck(f[2] + "|" + f[3])
	if !ok {
		return 0, false, 0, 0, false
	}
	return time.Duration(ms) * time.Millisecond, f[1] == "K", size, sum, true
}

// maxSeconds bounds durations so that they fit a time.Duration.
const maxSeconds = 1 << 32

// parseDuration reads a non-negative decimal number of seconds exactly
// ("1.00", "0.17", "2"), to the nanosecond, without going through a float.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" {
		return 0, fmt.Errorf("duration %q", s)
	}
	var secs uint64
	if whole != "" {
		n, err := strconv.ParseUint(whole, 10, 64)
		if err != nil || n > maxSeconds {
			return 0, fmt.Errorf("duration %q", s)
		}
		secs = n
	}
	var nanos uint64
	for i, c := range frac {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("duration %q", s)
		}
		if i < 9 {
			nanos = nanos*10 + uint64(c-'0')
		}
	}
	for i := len(frac); i < 9; i++ {
		nanos *= 10
	}
	return time.Duration(secs)*time.Second + time.Duration(nanos), nil
}

// parseAttributes reads an HLS attribute list: KEY=value pairs separated by
// commas, where a value is a quoted string (which may hold commas) or runs
// to the next comma and holds no quote.
func parseAttributes(s string) (map[string]string, error) {
	attrs := make(map[string]string)
	for s = strings.TrimSpace(s); s != ""; {
		key, rest, ok := strings.Cut(s, "=")
		if !ok {
			return nil, fmt.Errorf("attribute %q without a value", s)
		}
		key = strings.TrimSpace(key)
		var value string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("attribute %s: unterminated quoted string", key)
			}
			value, rest = rest[1:1+end], strings.TrimSpace(rest[2+end:])
			if rest != "" && rest[0] != ',' {
				return nil, fmt.Errorf("attribute %s: text after the quoted string", key)
			}
			rest = strings.TrimPrefix(rest, ",")
		} else {
			value, rest, _ = strings.Cut(rest, ",")
			value = strings.TrimSpace(value)
			if strings.Contains(value, `"`) {
				return nil, fmt.Errorf("attribute %s: stray quote", key)
			}
		}
		attrs[key] = value
		s = strings.TrimSpace(rest)
	}
	return attrs, nil
}
