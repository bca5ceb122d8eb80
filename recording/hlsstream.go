package recording

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"

	"roomrec/bilibili"
	"roomrec/recording/flv"
	"roomrec/recording/hls"
)

// HLS limits. Bilibili's segments are one second long and its playlists
// hold a few of them, so everything here is measured in target durations.
const (
	// maxSegmentBytes bounds one segment or init: a 1 s segment of the
	// original quality is about 1 MB.
	maxSegmentBytes = 64 << 20
	// maxPlaylistBytes bounds a media playlist; real ones are a few KiB.
	maxPlaylistBytes = 1 << 20
	// hlsRequestTimeout bounds one playlist, init or segment request.
	hlsRequestTimeout = 10 * time.Second
	// A playlist that every host answers 404 right after play info has
	// most likely not been made yet: the encoder's first segment comes up
	// to a target duration after LIVE, and the CDN answers 404 for the
	// first seconds of a broadcast. It is asked for again every
	// hlsAwaitPoll (a quarter of Bilibili's 1 s target duration) for up
	// to hlsAwaitFor before the session falls back to fresh play info and
	// its backoff, which doubles from 250 ms and so would come up to a
	// second late; the polls cost the CDN a 404 each and the API nothing.
	hlsAwaitPoll = 250 * time.Millisecond
	hlsAwaitFor  = 5 * time.Second
)

// errNotFound is a playlist or segment answering 404.
var errNotFound = errors.New("not found (404)")

// errURLExpired is a stream URL answering 403: its signature (expires=)
// has most likely run out. The next host is tried, and when none answers
// the session gets fresh play info.
var errURLExpired = errors.New("stream URL expired (403)")

// errPlaylistEnded is a media playlist that says it is complete: the
// encoder stopped, and the room is probably ending.
var errPlaylistEnded = errors.New("playlist ended")

// segmentDemuxer turns the segments of one HLS rendition into FLV tags, the
// units the repairer works on. The tags and their data are valid only
// during emit.
type segmentDemuxer interface {
	// Init takes an init segment (#EXT-X-MAP) and emits the codec
	// configuration it declares as sequence headers.
	Init(b []byte, emit func(*flv.Tag) error) error
	// Segment takes one media segment and emits its frames in order.
	Segment(b []byte, emit func(*flv.Tag) error) error
}

// hlsPosition is how far a session has read an HLS stream, kept across
// reconnects so that a fresh playlist (from another host, or after new
// play info) continues where the last one stopped instead of repeating it.
type hlsPosition struct {
	tracker   hls.Tracker // hands out each segment once; stalls are judged per connection
	demux     segmentDemuxer
	rendition string // format/codec/qn: another one is another stream
	initURI   string // the init segment last applied, without its query
}

// readHLS records an HLS stream from its media playlist until the stream
// breaks: it reloads the playlist about once per target duration, takes
// each new segment once by media sequence, checks it against the size and
// CRC32 Bilibili puts in its title, and feeds its frames to the repairer,
// the file taking each segment's frames as soon as they are fed.
// A new init segment (a resolution change) goes through the repairer as a
// codec change, which starts a new file. It returns how many bytes of
// segments it read and why it stopped: a URL that expired (403), a
// playlist that is gone (404), one that stopped growing, or one that ended.
func (s *session) readHLS(ctx context.Context, playlist string, stream bilibili.Stream, repairer *flv.Repairer) (int64, error) {
	pos := s.hlsPosition(stream)
	if _, continues := pos.tracker.Next(); !continues {
		// Only where sequence numbers do not say what was written (the
		// first HLS connection after another format's) can the stream
		// repeat frames already in the file. A reconnect that continues
		// the tracker takes each segment once; looking for a replay there
		// would drop any run of frames that repeat earlier ones byte for
		// byte (a still picture over silence) as one.
		repairer.StreamRestarted()
	}
	base, err := url.Parse(playlist)
	if err != nil {
		return 0, err
	}
	var (
		read    int64
		lastNew = time.Now()
		flowing bool
		behind  int   // reloads in a row wholly before what was taken
		fed     error // the repairer's (the file's) error: the connection ends on it
	)
	emit := func(t *flv.Tag) error {
		if err := repairer.Feed(t); err != nil {
			fed = err
			return err
		}
		return nil
	}
	// Once the room has ended the stream is read only until the playlist
	// stops growing, which the stall check below notices.
	for {
		pl, err := s.fetchPlaylist(ctx, base)
		if err != nil {
			return read, err
		}
		target := pl.TargetDuration
		if target <= 0 {
			target = time.Second
		}
		_, took := pos.tracker.Next() // whether segments were taken before this reload
		up := pos.tracker.Update(pl, time.Now())
		switch {
		case up.Behind && (read == 0 || behind >= 2):
			// A new connection, or several reloads, whose playlist ends
			// before what was taken: the stream restarted its numbering.
			s.log.Info("HLS sequence numbers restarted; taking the playlist afresh")
			pos.tracker.Reset()
			repairer.StreamRestarted() // the fresh window may hold what was written
			up = pos.tracker.Update(pl, time.Now())
			behind, took = 0, false
		case up.Behind:
			behind++ // a CDN answering with an older copy, for now
		default:
			behind = 0
		}
		if up.Lost > 0 {
			s.log.Warn("HLS segments left the playlist before they were fetched", slog.Uint64("lost", up.Lost))
		}
		fresh := up.New
		for _, seg := range fresh {
			// The tracker hands each segment out once; one not taken
			// because the connection ends here goes back to it, for the
			// next connection.
			giveBack := func() { pos.tracker.Rewind(seg.Seq) }
			if seg.Map != "" && stripQuery(seg.Map) != pos.initURI {
				// Its own buffer: the demuxer keeps the codec
				// configuration it finds there.
				b, err := s.fetchVerified(ctx, seg.Map, hls.Segment{}, nil)
				if err != nil {
					giveBack()
					return read, fmt.Errorf("init segment: %w", err)
				}
				if err := pos.demux.Init(b, emit); err != nil {
					giveBack()
					return read, err
				}
				pos.initURI = stripQuery(seg.Map)
				read += int64(len(b))
			}
			b, err := s.fetchVerified(ctx, seg.URI, seg, s.segment)
			if b != nil {
				s.segment = b[:0] // every tag of it is written before the next is read
			}
			if errors.Is(err, hls.ErrCorrupt) {
				// Never written: a gap the repairer squeezes out beats
				// a corrupt picture.
				s.t.opts.stats.segmentsSkipped.Add(1)
				s.log.Warn("segment skipped: it does not match its checksum", slog.Uint64("seq", seg.Seq))
				continue
			}
			if err != nil {
				giveBack()
				return read, err
			}
			read += int64(len(b))
			if err := pos.demux.Segment(b, emit); err != nil {
				if fed != nil {
					// The file failed, not the segment: the session
					// decides what follows (a full disk waits).
					return read, fed
				}
				// One unreadable segment is skipped like a bad one.
				s.log.Warn("segment skipped: cannot read it", slog.Uint64("seq", seg.Seq), slog.Any("err", err))
				continue
			}
			if err := s.files.flush(); err != nil {
				return read, err
			}
			if !flowing {
				flowing = true
				s.t.recovered(ErrorNetwork, sourceDownload)
			}
		}
		now := time.Now()
		if len(fresh) > 0 {
			lastNew = now
		}
		switch {
		case pl.EndList:
			return read, errPlaylistEnded
		case now.Sub(lastNew) >= hlsStallAfter(target):
			// Judged per connection: a fresh connection gets its own
			// time to show a new segment.
			return read, fmt.Errorf("%w: no new segment for %s", errStalled, now.Sub(lastNew).Round(time.Millisecond))
		}
		// A playlist that grew is reloaded a target duration later, when
		// the next segment is due; one that did not, half of one later,
		// as players do. One that was new from end to end (past segments
		// already taken) has likely moved on while its segments were
		// fetched: the recorder is behind, and reloads at once to catch
		// up, before more segments leave the window. The reload after it
		// finds little new and waits as usual, so this never spins.
		reloadGap := target
		switch {
		case len(fresh) == 0:
			reloadGap = target / 2
		case took && up.Repeated == 0 && !up.Behind:
			reloadGap = 0
		}
		if reloadGap > 0 && !sleep(ctx, reloadGap) {
			return read, ctx.Err()
		}
	}
}

// hlsStallAfter is how long a playlist may go without a new segment before
// it counts as stalled and the session fetches fresh play info: one and a
// half target durations (at least 1 s). Bilibili adds a segment every
// target duration, so a node that has stopped is left within two seconds
// of its last segment; the price is a play info call when a segment is
// merely half a target duration late, and nothing is lost either way,
// since the window holds several segments.
func hlsStallAfter(target time.Duration) time.Duration {
	return max(target*3/2, time.Second)
}

// hlsPosition returns the session's place in its HLS stream, starting a
// new one for another rendition (format, codec or quality), whose
// sequence numbers need not continue this one's.
func (s *session) hlsPosition(stream bilibili.Stream) *hlsPosition {
	key := fmt.Sprintf("%s/%s/%d", stream.Format, stream.Codec, stream.Qn)
	if s.hls == nil || s.hls.rendition != key {
		s.hls = &hlsPosition{rendition: key, demux: newSegmentDemuxer(stream.Format)}
	}
	return s.hls
}

// fetchPlaylist gets and parses the media playlist. A master playlist is
// followed to its first variant.
func (s *session) fetchPlaylist(ctx context.Context, u *url.URL) (*hls.Playlist, error) {
	for range 2 {
		b, err := s.fetch(ctx, u.String(), maxPlaylistBytes, nil)
		if err != nil {
			return nil, fmt.Errorf("playlist: %w", err)
		}
		pl, err := hls.Parse(bytes.NewReader(b), u)
		if err != nil {
			return nil, fmt.Errorf("playlist: %w", err)
		}
		if !pl.IsMaster() {
			return pl, nil
		}
		if u, err = url.Parse(pl.Variants[0].URI); err != nil {
			return nil, fmt.Errorf("playlist variant: %w", err)
		}
	}
	return nil, fmt.Errorf("playlist: %w: a master playlist leads to another", bilibili.ErrProtocol)
}

// fetchVerified gets a segment into buf's storage (see fetch) and checks it
// against the size and CRC32 of its playlist entry, trying once more when
// it does not match (a CDN that served a torn copy usually serves a whole
// one next). A segment that does not match is returned with the error, so
// its storage can be reused.
func (s *session) fetchVerified(ctx context.Context, uri string, seg hls.Segment, buf []byte) ([]byte, error) {
	for try := 0; ; try++ {
		b, err := s.fetch(ctx, uri, maxSegmentBytes, buf)
		if err != nil {
			return nil, err
		}
		if err := seg.Verify(b); err != nil {
			buf = b[:0]
			if try == 0 {
				s.t.opts.stats.segmentsRefetched.Add(1)
				s.log.Debug("segment does not match its checksum; fetching it again", slog.Uint64("seq", seg.Seq), slog.Any("err", err))
				continue
			}
			return b, err
		}
		return b, nil
	}
}

// fetch GETs a playlist or segment as the website's player does, reading
// the body into buf's storage when it is large enough: a recording reads
// a megabyte a second this way, and a fresh buffer for each, grown as it
// fills, would cost as much CPU in allocation and copying as the rest of
// the download path.
func (s *session) fetch(ctx context.Context, uri string, limit int64, buf []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, hlsRequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	setStreamHeaders(req)
	resp, err := s.t.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusForbidden:
		return nil, errURLExpired
	case http.StatusNotFound:
		return nil, fmt.Errorf("%s: %w", stripQuery(uri), errNotFound)
	default:
		return nil, fmt.Errorf("%s answered %s", stripQuery(uri), resp.Status)
	}
	b, err := readBody(io.LimitReader(resp.Body, limit+1), resp.ContentLength, buf)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d MiB", stripQuery(uri), limit>>20)
	}
	return b, nil
}

// readBody reads r to its end into buf's storage, growing it as needed:
// at once to size (the Content-Length, when known and positive) and one
// byte more, so that reading to the end takes no second growth.
func readBody(r io.Reader, size int64, buf []byte) ([]byte, error) {
	buf = buf[:0]
	if size > 0 && size < maxSegmentBytes {
		buf = slices.Grow(buf, int(size)+1)
	}
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, max(len(buf), 4096))
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// stripQuery drops a URL's query, where the CDN's signature lives: the same
// init under a newer signature is the same init.
func stripQuery(u string) string {
	for i := 0; i < len(u); i++ {
		if u[i] == '?' {
			return u[:i]
		}
	}
	return u
}
