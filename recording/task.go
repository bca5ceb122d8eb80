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

	"roomrec/bilibili"
)

// Status is where a Task is in its life.
type Status int32

const (
	NotStarted Status = iota
	Running           // watching the room, nothing to record
	Recording         // a broadcast is being downloaded
	Restarting        // a download failed and will be tried again shortly
	Stopped           // the task has ended; Err says why if it was not asked to
)

func (s Status) String() string {
	switch s {
	case NotStarted:
		return "not started"
	case Running:
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
	HTTPClient  *http.Client // for streams and cover images; default http.DefaultClient
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
	Record    bool
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
type Task struct {
	id      int64 // the real room id, fixed for the task's life
	opts    Options
	api     API
	publish func(Event)
	log     *slog.Logger
	poller  *poller // the Manager's; checks the room at start and as a safety net

	mu        sync.Mutex
	status    Status
	room      Room
	title     string
	cover     string
	area      [2]string // area, parent area
	record    bool
	broadcast *broadcast                    // the broadcast in progress, nil when offline
	session   *session                      // the download in progress, nil when none
	reported  map[ErrorKind]map[string]bool // sources that see each condition
	err       error
	cancel    context.CancelFunc
	done      chan struct{}
	signals   chan signal
	danmaku   atomic.Bool // the danmaku websocket is up
}

// broadcast is one live session of the room, from going live to ending, as
// the task sees it. It outlives the downloads made of it.
type broadcast struct {
	start   time.Time
	liveKey string
	files   int
	bytes   int64
	parts   int // file parts numbered so far, so names stay unique across reconnects
	// play is the play info fetched as the broadcast began, for its first
	// download; taken (set to nil) by the download that uses it.
	play *prefetched
	// admitted is the gate's last answer: whether the broadcast is to be
	// recorded at all. Only the run loop writes it.
	admitted bool
}

// newTask returns a task for an already resolved room.
func newTask(room Room, record bool, api API, opts Options, p *poller, publish func(Event)) *Task {
	return &Task{
		id:       room.RoomID,
		poller:   p,
		opts:     opts,
		api:      api,
		publish:  publish,
		log:      opts.Logger.With(slog.Int64("room", room.RoomID)),
		room:     room,
		record:   record,
		reported: map[ErrorKind]map[string]bool{},
		done:     make(chan struct{}),
		signals:  make(chan signal, 64),
	}
}

// Room returns the room the task watches.
func (t *Task) Room() Room {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.room
}

// Status returns the task's status.
func (t *Task) Status() Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.status
}

// Err returns the unrecoverable error that stopped the task, if any.
func (t *Task) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Info returns a snapshot of the task.
func (t *Task) Info() TaskInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	info := TaskInfo{Room: t.room, Title: t.title, Status: t.status, Record: t.record, Err: t.err, DanmakuConnected: t.danmaku.Load()}
	if b := t.broadcast; b != nil {
		info.Live, info.LiveStart, info.Files, info.Bytes = true, b.start, b.files, b.bytes
		info.Skipped = t.record && !b.admitted
	}
	if s := t.session; s != nil {
		info.Bytes += s.files.openBytes.Load()
		info.Stream = s.stream
	}
	return info
}

// Done is closed when the task has stopped.
func (t *Task) Done() <-chan struct{} { return t.done }

// Start starts watching in the background until ctx ends or Stop is called.
// It returns ErrTaskStarted or ErrTaskStopped if the task has been started
// before.
func (t *Task) Start(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch t.status {
	case Stopped:
		return fmt.Errorf("start room %d: %w", t.room.RoomID, ErrTaskStopped)
	case NotStarted:
	default:
		return fmt.Errorf("start room %d: %w", t.room.RoomID, ErrTaskStarted)
	}
	ctx, t.cancel = context.WithCancel(ctx)
	t.status = Running
	go t.run(ctx)
	return nil
}

// Stop stops the task and waits until its files are finished. Stopping a
// task that never started marks it stopped.
func (t *Task) Stop() {
	t.mu.Lock()
	cancel := t.cancel
	if cancel == nil {
		t.status = Stopped
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	cancel()
	<-t.done
}

// SetRecord switches between recording and only watching. Switching to
// record while the room is live starts a download at once.
func (t *Task) SetRecord(record bool) {
	t.mu.Lock()
	changed := t.record != record
	t.record = record
	t.mu.Unlock()
	if changed {
		t.signal(recordChanged{})
	}
}

// Recheck asks Options.Gate again about the broadcast in progress, as when
// what its answer depends on has changed: the download starts or stops
// accordingly. It does nothing while the room is offline.
func (t *Task) Recheck() {
	t.signal(recheck{})
}

// recording reports whether any reference asks the task to record.
func (t *Task) recording() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.record
}

func (t *Task) setStatus(s Status) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.status != Stopped {
		t.status = s
	}
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

// reportError publishes a TaskError when a condition of its kind starts,
// so a chat hears once about risk control, not once per retry. A condition
// can hold in several places at once (the poll, the danmaku connection, the
// download); it starts when the first reports it and ends when the last
// recovers.
func (t *Task) reportError(kind ErrorKind, source string, err error, recoverable bool) {
	t.mu.Lock()
	sources := t.reported[kind]
	first := len(sources) == 0
	if sources == nil {
		sources = map[string]bool{}
		t.reported[kind] = sources
	}
	sources[source] = true
	room := t.room
	t.mu.Unlock()
	if first {
		t.log.Warn("room problem", slog.String("kind", string(kind)), slog.String("where", source), slog.Any("err", err))
		t.publish(TaskError{Room: room, Kind: kind, Err: err, Recoverable: recoverable})
	}
}

// recovered notes that source no longer sees a condition of this kind, and
// publishes TaskRecovered when no source does.
func (t *Task) recovered(kind ErrorKind, source string) {
	t.mu.Lock()
	sources := t.reported[kind]
	was := sources[source]
	delete(sources, source)
	over := was && len(sources) == 0
	room := t.room
	t.mu.Unlock()
	if over {
		t.log.Info("room problem over", slog.String("kind", string(kind)))
		t.publish(TaskRecovered{Room: room, Kind: kind})
	}
}

// forget ends every reported condition whose kind and source match, as if
// each had recovered, publishing TaskRecovered for each kind that is over.
func (t *Task) forget(match func(kind ErrorKind, source string) bool) {
	t.mu.Lock()
	var ends [][2]string
	for kind, sources := range t.reported {
		for source := range sources {
			if match(kind, source) {
				ends = append(ends, [2]string{string(kind), source})
			}
		}
	}
	t.mu.Unlock()
	for _, e := range ends {
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
