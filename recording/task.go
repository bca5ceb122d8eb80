package recording

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"roomrec"
	"roomrec/bilibili"
)

// Status is where a Task is in its life.
type Status int32

const (
	NotStarted Status = iota
	Watching          // watching the room, nothing to record
	Recording         // a broadcast is being downloaded
	Restarting        // a download failed and will be tried again shortly
	Stopped           // the task has ended; Err says why if it was not asked to
)

func (s Status) String() string {
	switch s {
	case NotStarted:
		return "not started"
	case Watching:
		return "watching"
	case Recording:
		return "recording"
	case Restarting:
		return "restarting"
	case Stopped:
		return "stopped"
	}
	return fmt.Sprintf("status %d", int32(s))
}

// Errors from Task.Start.
var (
	ErrTaskStarted = errors.New("task already started")
	ErrTaskStopped = errors.New("task already stopped")
)

// API is what a Task needs from Bilibili. *bilibili.Client implements it.
type API interface {
	ResolveRoom(ctx context.Context, id int64) (bilibili.RoomInit, error)
	RoomInfo(ctx context.Context, roomID int64) (bilibili.RoomInfo, error)
	RoomsOfAnchors(ctx context.Context, uids []int64) (map[int64]bilibili.RoomInfo, error)
	PlayInfo(ctx context.Context, roomID int64, qn int) (bilibili.PlayInfo, error)
	DanmuInfo(ctx context.Context, roomID int64) (bilibili.DanmuInfo, error)
	WebsocketHeader() http.Header
}

// Options tune every task of a Manager. Zero values take the defaults noted.
type Options struct {
	Dir             string        // recordings directory; each room gets <Dir>/<real room id>/
	Quality         int           // preferred qn; default 10000 (original)
	FileTemplate    string        // see FileName.Render; default DefaultFileTemplate
	MaxFileBytes    int64         // split files at this size, on a keyframe; 0 = no limit
	MaxFileDuration time.Duration // split files at this media duration, on a keyframe; 0 = no limit
	PollInterval    time.Duration // safety-net poll of room info; default 5 min, ±20% jitter
	StallTimeout    time.Duration // a stream with no data this long is reconnected; default 10 s
	EndGrace        time.Duration // keep trying this long after the room seems to end; default 30 s
	StreamFailGrace time.Duration // a live room's stream failing this long is reported (ErrorNetwork); default 1 min
	RetryBackoff    time.Duration // first wait before retrying a failed step; default 1 s
	MaxBackoff      time.Duration // longest wait between retries; default 5 min
	RiskBackoff     time.Duration // first pause of every task's API calls after risk control; default 30 s
	// Container is the file format recordings are written in; default
	// ContainerAuto.
	Container Container
	// StreamOrder is which streams may be recorded, preferred first among
	// those of the best quality served; default bilibili.DefaultStreamOrder.
	StreamOrder []bilibili.StreamKind
	Danmaku     DanmakuOptions
	// OnAnchor, if set, hears the anchor's uid of a room whose task
	// learned it (it was not known, or has changed), so that the caller
	// can keep it: the bulk room check asks by it.
	OnAnchor   func(Room)
	HTTPClient *http.Client // for streams and cover images; default http.DefaultClient
	// MinFreeBytes is the disk guard: below this much free space where
	// recordings go, no new file starts (the task reports a disk error
	// once and waits). 0 turns the guard off.
	MinFreeBytes uint64
	// DiskFree reports free bytes under a directory; default statfs.
	DiskFree func(dir string) (uint64, error)
	// CreateFile creates a new video file; default: a new file on disk.
	// Tests replace it to stage a failing disk.
	CreateFile func(path string) (File, error)
	Location   *time.Location
	Now        func() time.Time
	Logger     *slog.Logger
	// Gate, when set, is asked whether a broadcast of a room that some
	// reference records is to be recorded: as it starts, again whenever
	// its title changes, and on Recheck. A broadcast it turns down is
	// watched but not downloaded; turned down mid-way, the file finishes
	// as when the last recording reference goes, and admitted mid-way, a
	// download starts then. It is called from the room's task, one call at
	// a time per room, and should answer quickly; nil admits every
	// broadcast.
	Gate func(room Room, b BroadcastInfo) bool

	stats *counters // the Manager's, shared by its tasks
}

// DanmakuOptions tune the danmaku websocket, mostly for tests.
type DanmakuOptions struct {
	HeartbeatInterval time.Duration
	ReadTimeout       time.Duration
	// Network is what the websocket's TCP connection uses: "tcp" (the
	// default), "tcp4" or "tcp6", as bilibili.Network names
	// ROOMREC_NETWORK for the API client.
	Network string
	// Dial opens that connection on Network; default a net.Dialer with a
	// 10 s timeout. Tests watch the network asked for with it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

func (o Options) withDefaults() Options {
	if o.Quality == 0 {
		o.Quality = 10000
	}
	if o.PollInterval == 0 {
		o.PollInterval = 5 * time.Minute
	}
	if o.StallTimeout == 0 {
		o.StallTimeout = 10 * time.Second
	}
	if o.StreamFailGrace == 0 {
		o.StreamFailGrace = time.Minute
	}
	if o.EndGrace == 0 {
		o.EndGrace = 30 * time.Second
	}
	if o.RetryBackoff == 0 {
		o.RetryBackoff = time.Second
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 5 * time.Minute
	}
	if o.RiskBackoff == 0 {
		o.RiskBackoff = 30 * time.Second
	}
	if o.Container == "" {
		o.Container = ContainerAuto
	}
	if o.StreamOrder == nil {
		o.StreamOrder = bilibili.DefaultStreamOrder
	}
	if o.CreateFile == nil {
		o.CreateFile = createFile
	}
	if o.DiskFree == nil {
		o.DiskFree = FreeSpace
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.stats == nil {
		o.stats = &counters{}
	}
	return o
}

// backoff returns the wait before retry number n (1-based): base doubled
// each time, capped, with ±20% jitter so many rooms do not retry in step.
func backoff(base, maxWait time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < maxWait; i++ {
		d *= 2
	}
	d = min(d, maxWait)
	return jitter(d)
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d - d/5 + rand.N(d*2/5+1)
}

// sleep waits for d or until ctx ends, reporting whether the wait completed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// TaskInfo is a snapshot of a task for listings.
type TaskInfo struct {
	Room
	Title     string
	Status    Status
	Record    bool // some reference records the room (SetRecord), seen at once
	Live      bool
	LiveStart time.Time
	Files     int    // finished files of the current broadcast
	Bytes     int64  // bytes of the current broadcast, the open file included
	Stream    Stream // what is being recorded now; zero when not recording
	// Skipped: live and recorded by some reference, but Options.Gate
	// turned the broadcast down, so nothing is downloaded.
	Skipped bool
	// DanmakuConnected says the room's danmaku websocket is up.
	DanmakuConnected bool
	Err              error
}

// Task watches one room and records its broadcasts. It restarts itself after
// every broadcast and after recoverable errors until it is stopped; an
// unrecoverable error (the room is gone) stops it and is kept in Err.
//
// The task's run loop (live.go) alone owns its state: the broadcast, the
// download, the title. Other goroutines read what it last published
// (state), and tell it things as signals.
type Task struct {
	id      int64 // the real room id, fixed for the task's life
	opts    Options
	api     API
	publish func(Event)
	log     *slog.Logger
	poller  *poller // the Manager's; checks the room at start and as a safety net

	// state is the newest snapshot of the task, published by the run loop
	// after every change (by Start and Stop before it runs); never nil.
	state atomic.Pointer[taskState]
	// wantRecord is whether any reference asks to record (SetRecord); the
	// run loop takes it over when it handles recordChanged.
	wantRecord atomic.Bool
	danmaku    atomic.Bool // the danmaku websocket is up
	conditions conditions
	signals    chan signal
	done       chan struct{}

	life   sync.Mutex // guards cancel, and state until the loop runs
	cancel context.CancelFunc
}

// taskState is the task as its run loop last published it. It is never
// changed once published, so any goroutine may read it without a lock.
type taskState struct {
	room      Room
	title     string
	cover     string
	status    Status
	err       error
	live      bool      // a broadcast is in progress
	liveStart time.Time // its start
	admitted  bool      // the gate's last answer about it
	made      tally     // what its downloads have made so far
	session   *session  // the download in progress, nil when none
	stream    Stream    // what the download reads now
}

// tally is what the downloads of one broadcast have made so far.
type tally struct {
	files int   // finished files
	bytes int64 // bytes of the finished files
	parts int   // file parts numbered, so names stay unique across reconnects
}

// broadcast is one live session of the room, from going live to ending, as
// the task sees it. It outlives the downloads made of it. Only the run loop
// touches it.
type broadcast struct {
	start   time.Time
	liveKey string
	made    tally // as the downloads last reported it
	// play is the play info fetched as the broadcast began, for its first
	// download; taken (set to nil) by the download that uses it.
	play *prefetched
	// admitted is the gate's last answer: whether the broadcast is to be
	// recorded at all.
	admitted bool
}

// newTask returns a task for an already resolved room.
func newTask(room Room, record bool, api API, opts Options, p *poller, publish func(Event)) *Task {
	t := &Task{
		id:      room.RoomID,
		poller:  p,
		opts:    opts,
		api:     api,
		publish: publish,
		log:     opts.Logger.With(roomrec.LogRoom(room.RoomID)),
		done:    make(chan struct{}),
		signals: make(chan signal, 64),
	}
	t.wantRecord.Store(record)
	t.state.Store(&taskState{room: room})
	return t
}

// Room returns the room the task watches.
func (t *Task) Room() Room { return t.state.Load().room }

// Status returns the task's status.
func (t *Task) Status() Status { return t.state.Load().status }

// Err returns the unrecoverable error that stopped the task, if any.
func (t *Task) Err() error { return t.state.Load().err }

// Info returns a snapshot of the task. It takes no lock and waits for
// nothing, so listing a thousand rooms is cheap.
func (t *Task) Info() TaskInfo {
	st := t.state.Load()
	record := t.wantRecord.Load()
	info := TaskInfo{Room: st.room, Title: st.title, Status: st.status, Record: record, Err: st.err, DanmakuConnected: t.danmaku.Load()}
	if st.live {
		info.Live, info.LiveStart, info.Files, info.Bytes = true, st.liveStart, st.made.files, st.made.bytes
		info.Skipped = record && !st.admitted
	}
	if s := st.session; s != nil {
		info.Bytes = max(info.Bytes, s.files.broadcastBytes.Load())
		info.Stream = st.stream
	}
	return info
}

// Done is closed when the task has stopped.
func (t *Task) Done() <-chan struct{} { return t.done }

// Start starts watching in the background until ctx ends or Stop is called.
// It returns ErrTaskStarted or ErrTaskStopped if the task has been started
// before.
func (t *Task) Start(ctx context.Context) error {
	t.life.Lock()
	defer t.life.Unlock()
	st := t.state.Load()
	switch st.status {
	case Stopped:
		return fmt.Errorf("start room %d: %w", st.room.RoomID, ErrTaskStopped)
	case NotStarted:
	default:
		return fmt.Errorf("start room %d: %w", st.room.RoomID, ErrTaskStarted)
	}
	ctx, t.cancel = context.WithCancel(ctx)
	l := newLoop(ctx, t, st.room)
	l.publishState()
	go t.run(l)
	return nil
}

// Stop stops the task and waits until its files are finished. Stopping a
// task that never started marks it stopped.
func (t *Task) Stop() {
	t.life.Lock()
	cancel := t.cancel
	if cancel == nil {
		st := *t.state.Load()
		st.status = Stopped
		t.state.Store(&st)
		t.life.Unlock()
		return
	}
	t.life.Unlock()
	cancel()
	<-t.done
}

// SetRecord switches between recording and only watching. Switching to
// record while the room is live starts a download at once.
func (t *Task) SetRecord(record bool) {
	if t.wantRecord.Swap(record) != record {
		t.signal(recordChanged{})
	}
}

// Recheck asks Options.Gate again about the broadcast in progress, as when
// what its answer depends on has changed: the download starts or stops
// accordingly. It does nothing while the room is offline.
func (t *Task) Recheck() {
	t.signal(recheck{})
}

// signal queues a signal for the run loop. Signals come from the watcher,
// whose pushes must not be lost, so this blocks when the loop is far behind
// rather than dropping; the loop never waits on the watcher, so it cannot
// deadlock.
func (t *Task) signal(s signal) {
	select {
	case t.signals <- s:
	case <-t.done:
	}
}

// conditions are the problems a task has reported and not yet seen
// recover, with the sources that see each. The poll, the danmaku
// connection and the download report them from their own goroutines.
type conditions struct {
	mu       sync.Mutex
	reported map[ErrorKind]map[string]bool
}

// start notes that source sees a condition of kind, and reports whether
// it is the first source to.
func (c *conditions) start(kind ErrorKind, source string) (first bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reported == nil {
		c.reported = map[ErrorKind]map[string]bool{}
	}
	sources := c.reported[kind]
	if sources == nil {
		sources = map[string]bool{}
		c.reported[kind] = sources
	}
	first = len(sources) == 0
	sources[source] = true
	return first
}

// end notes that source no longer sees a condition of kind, and reports
// whether that was the last source to.
func (c *conditions) end(kind ErrorKind, source string) (over bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sources := c.reported[kind]
	was := sources[source]
	delete(sources, source)
	return was && len(sources) == 0
}

// matching returns the kind and source of every condition match selects.
func (c *conditions) matching(match func(kind ErrorKind, source string) bool) [][2]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var found [][2]string
	for kind, sources := range c.reported {
		for source := range sources {
			if match(kind, source) {
				found = append(found, [2]string{string(kind), source})
			}
		}
	}
	return found
}

// reportError publishes a TaskError when a condition of its kind starts,
// so a chat hears once about risk control, not once per retry. A condition
// can hold in several places at once (the poll, the danmaku connection, the
// download); it starts when the first reports it and ends when the last
// recovers.
func (t *Task) reportError(kind ErrorKind, source string, err error, recoverable bool) {
	if t.conditions.start(kind, source) {
		t.log.Warn("room problem", slog.String("kind", string(kind)), slog.String("where", source), roomrec.LogErr(err))
		t.publish(TaskError{Room: t.Room(), Kind: kind, Err: err, Recoverable: recoverable})
	}
}

// recovered notes that source no longer sees a condition of this kind, and
// publishes TaskRecovered when no source does.
func (t *Task) recovered(kind ErrorKind, source string) {
	if t.conditions.end(kind, source) {
		t.log.Info("room problem over", slog.String("kind", string(kind)))
		t.publish(TaskRecovered{Room: t.Room(), Kind: kind})
	}
}

// forget ends every reported condition whose kind and source match, as if
// each had recovered, publishing TaskRecovered for each kind that is over.
func (t *Task) forget(match func(kind ErrorKind, source string) bool) {
	for _, e := range t.conditions.matching(match) {
		t.recovered(ErrorKind(e[0]), e[1])
	}
}

// classify names the kind of a Bilibili or download error for reports.
func classify(err error) ErrorKind {
	var disk *diskError
	switch {
	case errors.Is(err, bilibili.ErrRiskControl):
		return ErrorRiskControl
	case errors.Is(err, bilibili.ErrRoomNotFound):
		return ErrorRoomGone
	case errors.As(err, &disk):
		return ErrorDisk
	}
	return ErrorNetwork
}
