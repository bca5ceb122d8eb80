package recording

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"roomrec"
	"roomrec/bilibili"
	"roomrec/bilibili/danmaku"
	"roomrec/recording/flv"
)

// readBufferSize is how much of the stream is read at a time: large enough
// that a busy stream costs few system calls, and reused across reconnects.
const readBufferSize = 1 << 20

// session downloads one broadcast, reconnecting whenever the stream breaks
// while the room is live, until the room ends or its context is cancelled.
// Everything it writes goes through one repairer and one file sink, so the
// files stay continuous across reconnects.
type session struct {
	t         *Task
	log       *slog.Logger
	liveStart time.Time // the broadcast's
	files     *fileSink
	hls       *hlsPosition // where an HLS stream was read to, across reconnects
	// segment is the storage HLS media segments are read into, reused
	// from one to the next.
	segment []byte
	// started: RecordingStarted went out, at the first stream picked.
	started bool
	// play is the play info fetched as the broadcast began, for the first
	// attempt; taken (set to nil) by it.
	play *prefetched
	// progress carries the session's reports to the run loop, the newest
	// replacing one not yet read (see report).
	progress chan progress

	endOnce sync.Once
	ended   chan struct{} // closed when the room is known to have ended
}

// newSession returns a download of the broadcast that started at
// liveStart, whose earlier downloads made made.
func newSession(t *Task, liveStart time.Time, made tally, play *prefetched) *session {
	s := &session{t: t, log: t.log, liveStart: liveStart, play: play, ended: make(chan struct{}), progress: make(chan progress, 1)}
	s.files = newFileSink(t, liveStart, made, s.report)
	return s
}

// report hands the run loop the session's progress without waiting: a
// report the loop has not read yet is replaced, since only the newest
// counts. Only the file sink reports, under its lock, so there is one
// sender at a time and the last send never blocks.
func (s *session) report(p progress) {
	select {
	case s.progress <- p:
		return
	default:
	}
	select {
	case <-s.progress:
	default:
	}
	s.progress <- p
}

// roomEnded tells the session that PREPARING arrived or a poll saw the room
// offline. The session still reads what the stream has left.
func (s *session) roomEnded() {
	s.endOnce.Do(func() { close(s.ended) })
}

func (s *session) hasEnded() bool {
	select {
	case <-s.ended:
		return true
	default:
		return false
	}
}

// saveDanmaku writes a chat message beside the current video file.
func (s *session) saveDanmaku(ev danmaku.Event) {
	s.files.saveDanmaku(ev)
}

// run downloads until the broadcast is over. It reconnects at once after a
// stream that delivered data breaks, and backs off after attempts that got
// nothing. Once the room seems to have ended it keeps trying for EndGrace,
// since PREPARING and the end of the stream arrive in either order and a
// brief outage looks the same as an end.
func (s *session) run(ctx context.Context) (res sessionResult) {
	t := s.t
	opts := t.opts
	repairer := flv.NewRepairer(s.files, flv.RepairOptions{
		MaxFileBytes:    opts.MaxFileBytes,
		MaxFileDuration: opts.MaxFileDuration,
		Logger:          s.log,
	})
	buf := bufio.NewReaderSize(nil, readBufferSize)
	// Deferred first, so it runs last: after the last file is closed.
	defer func() {
		if s.started {
			t.publish(RecordingEnded{Room: t.Room(), LiveStart: s.liveStart, RoomEnded: res.roomEnded})
		}
	}()
	defer func() {
		if err := s.files.close(res.err != nil && !res.roomEnded); err != nil && res.err == nil {
			res.err = err
		}
		res.made = s.files.made
	}()

	var (
		failures     int
		offlineSince time.Time
		failingSince time.Time // first failure since data last flowed
	)
	for ctx.Err() == nil {
		got, err := s.downloadOnce(ctx, repairer, buf)
		var disk *diskError
		var format *formatError
		switch {
		case ctx.Err() != nil:
			return sessionResult{}
		case errors.As(err, &disk):
			t.reportError(ErrorDisk, sourceDownload, err, true)
			return sessionResult{err: err}
		case errors.As(err, &format):
			// The same stream would fail the same way: the task waits
			// before it tries again, and the chats hear of it once.
			t.reportError(ErrorFormat, sourceDownload, err, true)
			return sessionResult{err: err}
		case got > 0:
			// The stream broke after delivering data: reconnect at once.
			failures, offlineSince, failingSince = 0, time.Time{}, time.Time{}
			opts.stats.reconnects.Add(1)
			if s.hasEnded() {
				s.log.Debug("stream closed after the room ended; checking it is over", roomrec.LogErr(err))
			} else {
				s.log.Info("stream interrupted; reconnecting", roomrec.LogErr(err))
			}
			continue
		case errors.Is(err, bilibili.ErrNotLive) || s.hasEnded():
			now := time.Now()
			if offlineSince.IsZero() {
				offlineSince = now
			}
			if s.hasEnded() && errors.Is(err, bilibili.ErrNotLive) || now.Sub(offlineSince) >= opts.EndGrace {
				return sessionResult{roomEnded: true}
			}
		case errors.Is(err, bilibili.ErrRiskControl):
			t.reportError(ErrorRiskControl, sourceDownload, err, true)
		case errors.Is(err, errNoStream):
			// Retried like any failure: Bilibili often adds streams a
			// little after the room goes live.
			t.reportError(ErrorNoStream, sourceDownload, err, true)
		default:
			// Every host refusing or timing out: seconds of it are normal
			// (a CDN answers 404 at the start), a minute is a gap in the
			// recording that the chats should hear about.
			now := time.Now()
			if failingSince.IsZero() {
				failingSince = now
			} else if now.Sub(failingSince) >= opts.StreamFailGrace {
				t.reportError(ErrorNetwork, sourceDownload, err, true)
			}
		}
		failures++
		wait := backoff(opts.RetryBackoff/4, opts.MaxBackoff/10, failures)
		s.log.Debug("no stream yet; retrying", roomrec.LogErr(err), roomrec.LogRetryIn(wait))
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		case <-s.ended:
		}
	}
	return sessionResult{}
}

// errNoStream is a live room whose play info offers no stream of a kind
// roomrec may record (Options.StreamOrder).
var errNoStream = errors.New("Bilibili offers no stream roomrec can record")

// downloadOnce gets fresh play info, picks the stream to record, and reads
// it from the first host that answers until the stream ends. An HLS
// playlist that no host has yet is asked for again for a while (see
// hlsAwaitPoll). It returns how many bytes it read.
func (s *session) downloadOnce(ctx context.Context, repairer *flv.Repairer, buf *bufio.Reader) (int64, error) {
	t := s.t
	info, err := s.playInfo(ctx)
	if err != nil {
		return 0, err
	}
	t.recovered(ErrorRiskControl, sourceDownload)
	stream, ok := info.Pick(t.opts.StreamOrder)
	if !ok {
		return 0, fmt.Errorf("room %d: %w (offered: %s)", t.id, errNoStream, info.Formats())
	}
	t.recovered(ErrorNoStream, sourceDownload)
	picked := Stream{Qn: stream.Qn, Format: stream.Format, Codec: stream.Codec}
	s.files.setStream(picked)
	if !s.started {
		s.started = true
		t.publish(RecordingStarted{Room: t.Room(), LiveStart: s.liveStart, Requested: t.opts.Quality, Stream: picked})
	}
	read := func(u string) (int64, error) {
		if stream.Format == "flv" {
			// What follows an FLV connection in HLS starts afresh:
			// sequence numbers say nothing about what FLV wrote.
			s.hls = nil
			return s.readStream(ctx, u, repairer, buf)
		}
		return s.readHLS(ctx, u, stream, repairer)
	}
	for start := time.Now(); ; {
		var lastErr error
		notThere := stream.Format != "flv" // so far every host's playlist answered 404
		for _, u := range stream.URLs {
			n, err := read(u)
			if n > 0 || ctx.Err() != nil {
				return n, err
			}
			var disk *diskError
			if errors.As(err, &disk) {
				return n, err
			}
			s.log.Debug("stream host failed; trying the next", roomrec.LogErr(err))
			lastErr = err
			notThere = notThere && errors.Is(err, errNotFound)
		}
		if !notThere || time.Since(start) >= hlsAwaitFor || s.hasEnded() {
			return 0, lastErr
		}
		s.log.Debug("no playlist yet; asking again", roomrec.LogRetryIn(hlsAwaitPoll))
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-s.ended:
			return 0, lastErr
		case <-time.After(hlsAwaitPoll):
		}
	}
}

// playFresh is how long play info fetched as the broadcast began is used
// for its first download instead of asking again: its URLs are signed for
// much longer, and an API call saved is one fewer against the budget.
const playFresh = 10 * time.Second

// playInfo returns the broadcast's prefetched play info the first time,
// if it is fresh, and asks Bilibili otherwise.
func (s *session) playInfo(ctx context.Context) (bilibili.PlayInfo, error) {
	t := s.t
	play := s.play
	s.play = nil
	if play != nil && time.Since(play.at) < playFresh {
		return play.info, nil
	}
	return t.api.PlayInfo(ctx, t.id, t.opts.Quality)
}

// readStream reads one stream connection through the repairer. A stream
// that sends nothing for StallTimeout is cut, so a silent CDN is treated as
// a broken one.
func (s *session) readStream(ctx context.Context, url string, repairer *flv.Repairer, buf *bufio.Reader) (int64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	setStreamHeaders(req)

	stall := time.AfterFunc(s.t.opts.StallTimeout, func() { cancel(errStalled) })
	defer stall.Stop()
	resp, err := s.t.opts.HTTPClient.Do(req)
	if err != nil {
		return 0, streamErr(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("stream answered %s", resp.Status)
	}
	body := &countingReader{r: resp.Body, onRead: func() { stall.Reset(s.t.opts.StallTimeout) }}
	buf.Reset(body)
	r := flv.NewReader(buf)
	if _, err := r.ReadHeader(); err != nil {
		return body.n, streamErr(ctx, err)
	}
	repairer.StreamRestarted()
	s.t.recovered(ErrorNetwork, sourceDownload) // the stream flows again
	for {
		tag, err := r.ReadTag()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF // a live stream never ends cleanly
			}
			return body.n, streamErr(ctx, err)
		}
		if err := repairer.Feed(tag); err != nil {
			return body.n, err
		}
	}
}

var errStalled = errors.New("stream stalled")

// setStreamHeaders makes a stream request look like the website's player.
// No cookie: stream hosts are CDNs, not Bilibili.
func setStreamHeaders(req *http.Request) {
	req.Header.Set("User-Agent", bilibili.UserAgent)
	req.Header.Set("Referer", "https://live.bilibili.com/")
	req.Header.Set("Origin", "https://live.bilibili.com")
}

// streamErr says why a read failed: a stall cancels the request, which
// otherwise reads as a plain cancellation.
func streamErr(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, errStalled) {
		return fmt.Errorf("%w: %v", errStalled, err)
	}
	return err
}

// countingReader counts bytes and tells the stall timer each time data comes.
type countingReader struct {
	r      io.Reader
	n      int64
	onRead func()
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.n += int64(n)
		c.onRead()
	}
	return n, err
}
