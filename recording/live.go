package recording

import (
	"context"
	"log/slog"
	"time"

	"roomrec"
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
	made      tally // what the broadcast's downloads have made, this one's last file included
}

// progress is what a download reports to the run loop as it goes: what
// the broadcast's downloads have made so far and the stream read now. A
// report replaces one the loop has not read yet.
type progress struct {
	made   tally
	stream Stream
}

// loop is the task's run loop and the state it alone owns. Each select
// case of step is one method; after each, settle starts a download if one
// is wanted and publishes the task's state for other goroutines.
type loop struct {
	t *Task
	// ctx is the task's: it ends when the task is stopped. Kept here
	// because the loop is the task's goroutine and lives exactly as long.
	ctx context.Context

	status    Status
	room      Room
	title     string
	cover     string
	area      [2]string // area, parent area
	record    bool      // taken from Task.wantRecord on recordChanged
	err       error
	broadcast *broadcast // the broadcast in progress, nil when offline

	session      *session           // the download in progress, nil when none
	stream       Stream             // what it reads now
	sessionDone  chan sessionResult // the download's end; nil when none
	progress     chan progress      // the download's reports; nil when none
	stopSession  context.CancelFunc
	restartTimer <-chan time.Time
	failures     int  // downloads in a row that failed
	dropped      bool // the download was stopped because recording is no longer wanted
}

func newLoop(ctx context.Context, t *Task, room Room) *loop {
	return &loop{t: t, ctx: ctx, status: Watching, room: room, record: t.wantRecord.Load()}
}

// run is the task's goroutine: it starts the watcher and runs the loop
// until the task is stopped, then finishes the download.
func (t *Task) run(l *loop) {
	defer close(t.done)
	watchCtx, stopWatch := context.WithCancel(l.ctx)
	w := newWatcher(t)
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		w.run(watchCtx)
	}()
	defer func() {
		stopWatch()
		if l.stopSession != nil {
			l.stopSession()
			<-l.sessionDone
		}
		<-watcherDone
		// A stopped task observes nothing more: its conditions end with it
		// (a room gone or an unreadable API stays, being why it stopped).
		t.forget(func(kind ErrorKind, _ string) bool { return kind != ErrorRoomGone && kind != ErrorProtocol })
		l.status = Stopped
		l.session, l.stream = nil, Stream{}
		l.publishState()
	}()
	for l.step() {
	}
}

// step waits for one thing to happen and acts on it. It reports whether
// the task goes on.
func (l *loop) step() bool {
	select {
	case <-l.ctx.Done():
		return false
	case s := <-l.t.signals:
		if !l.onSignal(s) {
			return false
		}
	case p := <-l.progress:
		l.onProgress(p)
	case res := <-l.sessionDone:
		if !l.onSessionDone(res) {
			return false
		}
	case <-l.restartTimer:
		l.restartTimer = nil
	}
	l.settle()
	return true
}

// settle brings the download in line with the broadcast state, and
// publishes the state with the status it now has.
func (l *loop) settle() {
	if l.broadcast == nil {
		l.restartTimer = nil
	}
	if l.wantDownload() {
		l.startSession()
	}
	switch {
	case l.sessionDone != nil:
		l.status = Recording
	case l.restartTimer != nil:
		l.status = Restarting
	default:
		l.status = Watching
	}
	l.publishState()
}

// publishState publishes a snapshot of the loop's state for Task.Info and
// the other readers.
func (l *loop) publishState() {
	st := &taskState{
		room: l.room, title: l.title, cover: l.cover, status: l.status, err: l.err,
		session: l.session, stream: l.stream,
	}
	if b := l.broadcast; b != nil {
		st.live, st.liveStart, st.admitted, st.made = true, b.start, b.admitted, b.made
	}
	l.t.state.Store(st)
}

// announce publishes the state, then an event: whoever reads the task on
// hearing of it sees what the event says.
func (l *loop) announce(ev Event) {
	l.publishState()
	l.t.publish(ev)
}

func (l *loop) wantDownload() bool {
	return l.record && l.broadcast != nil && l.broadcast.admitted && l.session == nil && l.restartTimer == nil
}

// unwanted: a download runs that nothing wants any more, because no
// reference records the room or the gate turned the broadcast down.
func (l *loop) unwanted() bool {
	return l.stopSession != nil && (!l.record || l.broadcast != nil && !l.broadcast.admitted)
}

// startSession starts a download of the broadcast in progress, handing
// it the play info fetched as the broadcast began.
func (l *loop) startSession() {
	b := l.broadcast
	play := b.play
	b.play = nil
	sctx, cancel := context.WithCancel(l.ctx)
	s := newSession(l.t, b.start, b.made, play)
	l.session, l.stopSession, l.progress = s, cancel, s.progress
	done := make(chan sessionResult, 1)
	l.sessionDone = done
	// Published before the download runs: its files are named from the
	// state, and danmaku is saved through it.
	l.publishState()
	go func() { done <- s.run(sctx) }()
}

// onSignal applies one signal to the broadcast state. It reports whether
// the task goes on: a fatal signal stops it.
func (l *loop) onSignal(s signal) bool {
	switch s := s.(type) {
	case fatal:
		l.err = s.err
		l.publishState()
		l.t.reportError(s.kind, sourcePoll, s.err, false)
		return false
	case livePush:
		l.onLive(s)
	case endPush:
		l.roomEnded()
	case titlePush:
		l.setTitle(s.title, s.area, s.parentArea)
	case polled:
		l.onPolled(s)
	case recordChanged:
		l.record = l.t.wantRecord.Load()
		l.regate()
	case recheck:
		// The loop starts or stops a download if one is now wanted or
		// not.
		l.regate()
	}
	if l.unwanted() {
		// No chat records the room any more, or the broadcast no longer
		// counts for any that does: the file finishes now, not when the
		// broadcast ends, and watching goes on.
		l.stopSession()
		l.dropped = true
	}
	return true
}

// onProgress takes a download's report.
func (l *loop) onProgress(p progress) {
	if b := l.broadcast; b != nil {
		b.made = p.made
	}
	l.stream = p.stream
}

// onSessionDone acts on how a download ended. It reports whether the task
// goes on.
func (l *loop) onSessionDone(res sessionResult) bool {
	l.stopSession()
	l.session, l.stream = nil, Stream{}
	l.sessionDone, l.progress, l.stopSession = nil, nil, nil
	if b := l.broadcast; b != nil {
		b.made = res.made
	}
	dropped := l.dropped
	l.dropped = false
	switch {
	case res.roomEnded:
		l.failures = 0
		l.endBroadcast()
	case l.ctx.Err() != nil:
		return false
	case dropped:
		// Stopped on purpose; the broadcast goes on being watched.
	default:
		// The room may still be live: try again after a pause, since an
		// immediate retry of whatever failed (a full disk, risk control)
		// would only spin.
		l.failures++
		l.t.log.Warn("download failed; retrying", roomrec.LogErr(res.err), slog.Int("failures", l.failures))
		l.restartTimer = time.After(backoff(l.t.opts.RetryBackoff, l.t.opts.MaxBackoff, l.failures))
	}
	return true
}

// onLive begins a broadcast on a LIVE push.
func (l *loop) onLive(s livePush) {
	if l.broadcast != nil {
		return // the second LIVE of a pair, or LIVE for what is being recorded
	}
	// The alert names the stream recorded; its play info is fetched
	// beside the room info the alert waits for anyway (and left unused if
	// the gate turns the broadcast down).
	play := l.prefetchPlay()
	info, err := l.fetchInfo()
	start := info.LiveStartTime
	if err != nil || start.IsZero() {
		start = s.liveTime
	}
	if start.IsZero() {
		start = l.t.opts.Now()
	}
	l.beginBroadcast(start, s.liveKey, false, play)
}

// onPolled takes a poll's answer: the room's details, and a broadcast
// begun or ended whose push was missed.
func (l *loop) onPolled(s polled) {
	l.applyInfo(s.info)
	l.setTitle(s.info.Title, s.info.AreaName, s.info.ParentAreaName)
	switch live := s.info.LiveStatus == bilibili.Live; {
	case live && l.broadcast == nil:
		// Play info is fetched only for a broadcast the gate admits.
		l.beginBroadcast(s.info.LiveStartTime, "", s.first, func() *prefetched { return l.prefetchPlay()() })
	case !live && l.broadcast != nil:
		l.roomEnded()
	}
}

// admits asks the gate whether a broadcast is to be recorded. A task that
// only watches asks nothing: it records nothing anyway, and asks again
// when a reference records it (SetRecord, then Recheck).
func (l *loop) admits(b BroadcastInfo) bool {
	if !l.record {
		return false
	}
	if l.t.opts.Gate == nil {
		return true
	}
	if b.Start.IsZero() {
		b.Start = l.t.opts.Now()
	}
	return l.t.opts.Gate(l.room, b)
}

// regate asks the gate again about the broadcast in progress, with its
// title now, and reports whether it is admitted.
func (l *loop) regate() bool {
	b := l.broadcast
	if b == nil {
		return false
	}
	info := BroadcastInfo{Start: b.start, Title: l.title}
	admitted := l.admits(info)
	if b.admitted != admitted {
		l.t.log.Info("gate answered anew", slog.Bool("record", admitted), slog.String("title", info.Title))
	}
	b.admitted = admitted
	return admitted
}

// fetchInfo refreshes the room's title, cover and anchor before an alert.
// A failure is logged and the last known values are used: an alert with an
// old title beats a late or missing alert.
func (l *loop) fetchInfo() (bilibili.RoomInfo, error) {
	ctx, cancel := context.WithTimeout(l.ctx, 5*time.Second)
	defer cancel()
	info, err := l.t.api.RoomInfo(ctx, l.t.id)
	if err != nil {
		l.t.log.Warn("room info before alert failed; using last known", roomrec.LogErr(err))
		return info, err
	}
	l.applyInfo(info)
	// The alert carries the current title; a title change whose push was
	// missed is taken over silently rather than announced separately.
	if info.Title != "" {
		l.title = info.Title
		l.area = [2]string{info.AreaName, info.ParentAreaName}
	}
	return info, nil
}

func (l *loop) applyInfo(info bilibili.RoomInfo) {
	if info.AnchorName != "" {
		l.room.Anchor = info.AnchorName
	}
	if info.ShortID != 0 {
		l.room.ShortID = info.ShortID
	}
	if info.UID != 0 {
		l.room.UID = info.UID
	}
	if info.Cover != "" {
		l.cover = info.Cover
	}
	if l.title == "" {
		l.title = info.Title
		l.area = [2]string{info.AreaName, info.ParentAreaName}
	}
}

// setTitle records a title and publishes TitleChanged when it differs from a
// known one.
func (l *loop) setTitle(title, area, parentArea string) {
	if title == "" {
		return
	}
	old := l.title
	l.title = title
	if area != "" {
		l.area = [2]string{area, parentArea}
	}
	if old == "" || old == title {
		return
	}
	l.t.log.Info("title changed", slog.String("title", title))
	ev := TitleChanged{Room: l.room, Old: old, New: title}
	if b := l.broadcast; b != nil {
		// A title is what the gate may decide on: it is asked again
		// before the change is told, so the event says what follows.
		ev.LiveStart, ev.Record = b.start, l.regate()
	}
	l.announce(ev)
}

// prefetchPlay starts fetching play info for a broadcast that is starting
// and returns a function that waits for it (at most playPrefetchTimeout).
// A task that only watches fetches nothing.
func (l *loop) prefetchPlay() func() *prefetched {
	if !l.record {
		return func() *prefetched { return nil }
	}
	t := l.t
	done := make(chan *prefetched, 1)
	go func() {
		ctx, cancel := context.WithTimeout(l.ctx, playPrefetchTimeout)
		defer cancel()
		info, err := t.api.PlayInfo(ctx, t.id, t.opts.Quality)
		if err != nil {
			t.log.Debug("play info before alert failed; the download fetches it", roomrec.LogErr(err))
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
func (l *loop) beginBroadcast(start time.Time, liveKey string, atStart bool, play func() *prefetched) {
	if l.broadcast != nil {
		return
	}
	admitted := l.admits(BroadcastInfo{Start: start, Title: l.title})
	var p *prefetched
	var stream Stream
	if admitted {
		p = play()
	}
	if p != nil {
		if s, ok := p.info.Pick(l.t.opts.StreamOrder); ok {
			stream = Stream{Qn: s.Qn, Format: s.Format, Codec: s.Codec}
		}
	}
	l.broadcast = &broadcast{start: start, liveKey: liveKey, play: p, admitted: admitted}
	ev := LiveStarted{
		Room: l.room, Title: l.title, Cover: l.cover, Area: l.area[0], ParentArea: l.area[1],
		LiveKey: liveKey, LiveStart: start, Record: admitted, AlreadyLiveAtStart: atStart,
		Requested: l.t.opts.Quality, Stream: stream,
	}
	l.t.log.Info("room is live", slog.String("title", ev.Title), slog.Time("since", start), slog.Bool("record", admitted))
	l.announce(ev)
}

// roomEnded tells a running download that the room has ended, or ends the
// broadcast at once when nothing is downloading.
func (l *loop) roomEnded() {
	switch {
	case l.session != nil:
		l.session.roomEnded()
	case l.broadcast != nil:
		l.endBroadcast()
	}
}

// endBroadcast publishes LiveEnded and forgets the broadcast.
func (l *loop) endBroadcast() {
	b := l.broadcast
	if b == nil {
		return
	}
	l.broadcast = nil
	ev := LiveEnded{
		Room: l.room, Title: l.title, LiveStart: b.start, Files: b.made.files, Bytes: b.made.bytes,
		Duration: l.t.opts.Now().Sub(b.start),
	}
	l.t.log.Info("broadcast ended", slog.Duration(roomrec.KeyDuration, ev.Duration), slog.Int("files", ev.Files), slog.Int64(roomrec.KeyBytes, ev.Bytes))
	// What the download saw (a stream it could not read, none it may
	// record, a full disk) belongs to this broadcast; the next one checks
	// afresh and is reported afresh.
	l.t.forget(func(kind ErrorKind, source string) bool { return source == sourceDownload })
	l.announce(ev)
}
