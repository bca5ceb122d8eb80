package recording

import (
	"context"
	"log/slog"
	"time"

	"roomrec/bilibili"
)

// A signal is something the watcher learned about the room. Only the task's
// run loop acts on signals, so the broadcast state has one writer.
type signal interface{ isSignal() }

type (
	// livePush is a LIVE message; the second LIVE of a pair has no key or time.
	livePush struct {
		liveKey  string
		liveTime time.Time
	}
	// endPush is a PREPARING message.
	endPush struct{}
	// titlePush is a ROOM_CHANGE message.
	titlePush struct{ title, area, parentArea string }
	// polled is a fresh answer from room info; first is the check at start.
	polled struct {
		info  bilibili.RoomInfo
		first bool
	}
	// fatal is an error the task cannot recover from: the room is gone,
	// or Bilibili's API changed under roomrec.
	fatal struct {
		kind ErrorKind
		err  error
	}
	// recordChanged means SetRecord changed the mode.
	recordChanged struct{}
	// recheck means Recheck was called: the gate may answer differently.
	recheck struct{}
)

func (livePush) isSignal()      {}
func (endPush) isSignal()       {}
func (titlePush) isSignal()     {}
func (polled) isSignal()        {}
func (fatal) isSignal()         {}
func (recordChanged) isSignal() {}
func (recheck) isSignal()       {}

// sessionResult is how a download ended.
type sessionResult struct {
	roomEnded bool  // the broadcast is over
	err       error // the download failed while the room may still be live
}

// run is the task's loop: it owns the broadcast state and starts and stops
// downloads as signals arrive.
func (t *Task) run(ctx context.Context) {
	defer close(t.done)
	watchCtx, stopWatch := context.WithCancel(ctx)
	w := newWatcher(t)
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		w.run(watchCtx)
	}()

	var (
		sessionDone  chan sessionResult
		stopSession  context.CancelFunc
		restartTimer <-chan time.Time
		failures     int
		dropped      bool // the download was stopped because recording is no longer wanted
	)
	startSession := func() {
		sctx, cancel := context.WithCancel(ctx)
		s := newSession(t)
		t.mu.Lock()
		t.session = s
		t.mu.Unlock()
		stopSession = cancel
		sessionDone = make(chan sessionResult, 1)
		done := sessionDone
		go func() { done <- s.run(sctx) }()
	}
	wantDownload := func() bool {
		t.mu.Lock()
		defer t.mu.Unlock()
		return t.record && t.broadcast != nil && t.broadcast.admitted && t.session == nil && restartTimer == nil
	}
	// unwanted: a download runs that nothing wants any more, because no
	// reference records the room or the gate turned the broadcast down.
	unwanted := func() bool {
		t.mu.Lock()
		defer t.mu.Unlock()
		return stopSession != nil && (!t.record || t.broadcast != nil && !t.broadcast.admitted)
	}

	defer func() {
		stopWatch()
		if stopSession != nil {
			stopSession()
			<-sessionDone
		}
		<-watcherDone
		// A stopped task observes nothing more: its conditions end with it
		// (a room gone or an unreadable API stays, being why it stopped).
		t.forget(func(kind ErrorKind, _ string) bool { return kind != ErrorRoomGone && kind != ErrorProtocol })
		t.mu.Lock()
		t.status = Stopped
		t.session = nil
		t.mu.Unlock()
	}()

	for {
		select {
		case <-ctx.Done():
			return
		case s := <-t.signals:
			if f, ok := s.(fatal); ok {
				t.reportError(f.kind, sourcePoll, f.err, false)
				t.mu.Lock()
				t.err = f.err
				t.mu.Unlock()
				return
			}
			t.handle(ctx, s)
			if unwanted() {
				// No chat records the room any more, or the broadcast no
				// longer counts for any that does: the file finishes now,
				// not when the broadcast ends, and watching goes on.
				stopSession()
				dropped = true
			}
		case res := <-sessionDone:
			stopSession()
			sessionDone, stopSession = nil, nil
			wasDropped := dropped
			dropped = false
			t.mu.Lock()
			t.session = nil
			t.mu.Unlock()
			switch {
			case res.roomEnded:
				failures = 0
				t.endBroadcast()
			case ctx.Err() != nil:
				return
			case wasDropped:
				// Stopped on purpose; the broadcast goes on being watched.
			default:
				// The room may still be live: try again after a pause, since
				// an immediate retry of whatever failed (a full disk, risk
				// control) would only spin.
				failures++
				t.setStatus(Restarting)
				t.log.Warn("download failed; retrying", slog.Any("err", res.err), slog.Int("failures", failures))
				restartTimer = time.After(backoff(t.opts.RetryBackoff, t.opts.MaxBackoff, failures))
			}
		case <-restartTimer:
			restartTimer = nil
		}
		t.mu.Lock()
		if t.broadcast == nil {
			restartTimer = nil
		}
		t.mu.Unlock()
		if wantDownload() {
			startSession()
		}
		switch {
		case sessionDone != nil:
			t.setStatus(Recording)
		case restartTimer != nil:
			t.setStatus(Restarting)
		default:
			t.setStatus(Running)
		}
	}
}

// handle applies one signal to the broadcast state.
func (t *Task) handle(ctx context.Context, s signal) {
	switch s := s.(type) {
	case livePush:
		t.mu.Lock()
		live := t.broadcast != nil
		t.mu.Unlock()
		if live {
			return // the second LIVE of a pair, or LIVE for what is being recorded
		}
		// The alert names the stream recorded; its play info is fetched
		// beside the room info the alert waits for anyway (and left
		// unused if the gate turns the broadcast down).
		play := t.prefetchPlay(ctx)
		info, err := t.fetchInfo(ctx)
		start := info.LiveStartTime
		if err != nil || start.IsZero() {
			start = s.liveTime
		}
		if start.IsZero() {
			start = t.opts.Now()
		}
		t.beginBroadcast(start, s.liveKey, false, play)
	case endPush:
		t.roomEnded()
	case titlePush:
		t.setTitle(s.title, s.area, s.parentArea)
	case polled:
		t.applyInfo(s.info)
		t.setTitle(s.info.Title, s.info.AreaName, s.info.ParentAreaName)
		t.mu.Lock()
		b := t.broadcast
		t.mu.Unlock()
		switch {
		case s.info.LiveStatus == bilibili.Live && b == nil:
			// Play info is fetched only for a broadcast the gate admits.
			t.beginBroadcast(s.info.LiveStartTime, "", s.first, func() *prefetched { return t.prefetchPlay(ctx)() })
		case s.info.LiveStatus != bilibili.Live && b != nil:
			t.roomEnded()
		}
	case recordChanged, recheck:
		// The loop starts or stops a download if one is now wanted or
		// not.
		t.regate()
	}
}

// admits asks the gate whether a broadcast is to be recorded. A task that
// only watches asks nothing: it records nothing anyway, and asks again
// when a reference records it (SetRecord, then Recheck).
func (t *Task) admits(b BroadcastInfo) bool {
	t.mu.Lock()
	record, room := t.record, t.room
	t.mu.Unlock()
	if !record {
		return false
	}
	if t.opts.Gate == nil {
		return true
	}
	if b.Start.IsZero() {
		b.Start = t.opts.Now()
	}
	return t.opts.Gate(room, b)
}

// regate asks the gate again about the broadcast in progress, with its
// title now, and reports whether it is admitted.
func (t *Task) regate() bool {
	t.mu.Lock()
	b := t.broadcast
	var info BroadcastInfo
	if b != nil {
		info = BroadcastInfo{Start: b.start, Title: t.title}
	}
	t.mu.Unlock()
	if b == nil {
		return false
	}
	admitted := t.admits(info)
	t.mu.Lock()
	changed := t.broadcast == b && b.admitted != admitted
	if t.broadcast == b {
		b.admitted = admitted
	}
	t.mu.Unlock()
	if changed {
		t.log.Info("gate answered anew", slog.Bool("record", admitted), slog.String("title", info.Title))
	}
	return admitted
}

// fetchInfo refreshes the room's title, cover and anchor before an alert.
// A failure is logged and the last known values are used: an alert with an
// old title beats a late or missing alert.
func (t *Task) fetchInfo(ctx context.Context) (bilibili.RoomInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := t.api.RoomInfo(ctx, t.id)
	if err != nil {
		t.log.Warn("room info before alert failed; using last known", slog.Any("err", err))
		return info, err
	}
	t.applyInfo(info)
	// The alert carries the current title; a title change whose push was
	// missed is taken over silently rather than announced separately.
	if info.Title != "" {
		t.mu.Lock()
		t.title = info.Title
		t.area = [2]string{info.AreaName, info.ParentAreaName}
		t.mu.Unlock()
	}
	return info, nil
}

func (t *Task) applyInfo(info bilibili.RoomInfo) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if info.AnchorName != "" {
		t.room.Anchor = info.AnchorName
	}
	if info.ShortID != 0 {
		t.room.ShortID = info.ShortID
	}
	if info.UID != 0 {
		t.room.UID = info.UID
	}
	if info.Cover != "" {
		t.cover = info.Cover
	}
	if t.title == "" {
		t.title = info.Title
		t.area = [2]string{info.AreaName, info.ParentAreaName}
	}
}

// setTitle records a title and publishes TitleChanged when it differs from a
// known one.
func (t *Task) setTitle(title, area, parentArea string) {
	if title == "" {
		return
	}
	t.mu.Lock()
	old := t.title
	t.title = title
	if area != "" {
		t.area = [2]string{area, parentArea}
	}
	room := t.room
	b := t.broadcast
	t.mu.Unlock()
	if old == "" || old == title {
		return
	}
	t.log.Info("title changed", slog.String("title", title))
	ev := TitleChanged{Room: room, Old: old, New: title}
	if b != nil {
		// A title is what the gate may decide on: it is asked again
		// before the change is told, so the event says what follows.
		ev.LiveStart, ev.Record = b.start, t.regate()
	}
	t.publish(ev)
}

// prefetchPlay starts fetching play info for a broadcast that is starting
// and returns a function that waits for it (at most playPrefetchTimeout).
// A task that only watches fetches nothing.
func (t *Task) prefetchPlay(ctx context.Context) func() *prefetched {
	if !t.recording() {
		return func() *prefetched { return nil }
	}
	done := make(chan *prefetched, 1)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, playPrefetchTimeout)
		defer cancel()
		info, err := t.api.PlayInfo(ctx, t.id, t.opts.Quality)
		if err != nil {
			t.log.Debug("play info before alert failed; the download fetches it", slog.Any("err", err))
			done <- nil
			return
		}
		done <- &prefetched{info: info, at: time.Now()}
	}()
	return func() *prefetched { return <-done }
}

// playPrefetchTimeout bounds how long an alert waits for play info.
const playPrefetchTimeout = 3 * time.Second

// prefetched is play info fetched as a broadcast began: the alert names
// its stream, and the first download uses it instead of asking again.
type prefetched struct {
	info bilibili.PlayInfo
	at   time.Time
}

// beginBroadcast marks the room live and publishes LiveStarted, once per
// broadcast: a broadcast seen again (the same start time after a restart of
// the download) is not announced twice. The gate is asked first; play
// waits for the play info fetched for a broadcast it admits (nil if none
// came).
func (t *Task) beginBroadcast(start time.Time, liveKey string, atStart bool, play func() *prefetched) {
	t.mu.Lock()
	live, title := t.broadcast != nil, t.title
	t.mu.Unlock()
	if live {
		return
	}
	admitted := t.admits(BroadcastInfo{Start: start, Title: title})
	var p *prefetched
	var stream Stream
	if admitted {
		p = play()
	}
	if p != nil {
		if s, ok := p.info.Pick(t.opts.StreamOrder); ok {
			stream = Stream{Qn: s.Qn, Format: s.Format, Codec: s.Codec}
		}
	}
	t.mu.Lock()
	t.broadcast = &broadcast{start: start, liveKey: liveKey, play: p, admitted: admitted}
	ev := LiveStarted{
		Room: t.room, Title: t.title, Cover: t.cover, Area: t.area[0], ParentArea: t.area[1],
		LiveKey: liveKey, LiveStart: start, Record: admitted, AlreadyLiveAtStart: atStart,
		Requested: t.opts.Quality, Stream: stream,
	}
	t.mu.Unlock()
	t.log.Info("room is live", slog.String("title", ev.Title), slog.Time("since", start), slog.Bool("record", admitted))
	t.publish(ev)
}

// roomEnded tells a running download that the room has ended, or ends the
// broadcast at once when nothing is downloading.
func (t *Task) roomEnded() {
	t.mu.Lock()
	s, live := t.session, t.broadcast != nil
	t.mu.Unlock()
	switch {
	case s != nil:
		s.roomEnded()
	case live:
		t.endBroadcast()
	}
}

// endBroadcast publishes LiveEnded and forgets the broadcast.
func (t *Task) endBroadcast() {
	t.mu.Lock()
	b := t.broadcast
	t.broadcast = nil
	ev := LiveEnded{Room: t.room, Title: t.title}
	t.mu.Unlock()
	if b == nil {
		return
	}
	ev.LiveStart, ev.Files, ev.Bytes = b.start, b.files, b.bytes
	ev.Duration = t.opts.Now().Sub(b.start)
	t.log.Info("broadcast ended", slog.Duration("duration", ev.Duration), slog.Int("files", ev.Files), slog.Int64("bytes", ev.Bytes))
	// What the download saw (a stream it could not read, none it may
	// record, a full disk) belongs to this broadcast; the next one checks
	// afresh and is reported afresh.
	t.forget(func(kind ErrorKind, source string) bool { return source == sourceDownload })
	t.publish(ev)
}
