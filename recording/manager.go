package recording

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// ErrNotWatched is returned by Release for a room the Manager has no task for.
var ErrNotWatched = errors.New("room is not watched")

// ErrShutdown is returned by Acquire after Shutdown.
var ErrShutdown = errors.New("recorder is shutting down")

// Manager owns every Task: one per real room id however many callers ask for
// the room. Each Acquire is a reference; the task records while any
// reference asks to record, and stops when the last reference is released.
type Manager struct {
	api    API
	opts   Options
	events *eventQueue
	ctx    context.Context
	cancel context.CancelFunc

	stats      *counters
	poller     *poller
	pollerDone chan struct{}

	mu    sync.Mutex
	tasks map[int64]*managed
	shut  bool

	stopping sync.WaitGroup // released tasks finishing their files
}

type managed struct {
	task          *Task
	record, watch int // references by mode
}

// NewManager returns a Manager whose tasks use api and opts. onEvent is
// called with every task's events, in order, from one goroutine of the
// Manager's; a slow onEvent delays later events but never a download.
func NewManager(api API, opts Options, onEvent func(Event)) *Manager {
	if onEvent == nil {
		onEvent = func(Event) {}
	}
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	stats := &counters{}
	opts.stats = stats
	gated := newRiskGate(api, opts.RiskBackoff, opts.MaxBackoff, opts.Now, stats)
	m := &Manager{
		api:        gated,
		poller:     newPoller(gated, opts),
		pollerDone: make(chan struct{}),
		stats:      stats,
		opts:       opts,
		events:     newEventQueue(onEvent),
		ctx:        ctx,
		cancel:     cancel,
		tasks:      map[int64]*managed{},
	}
	go func() {
		defer close(m.pollerDone)
		m.poller.run(ctx)
	}()
	return m
}

// Resolve returns the room for a short or real room id. It returns an error
// wrapping bilibili.ErrRoomNotFound if Bilibili does not know the room.
func (m *Manager) Resolve(ctx context.Context, id int64) (Room, error) {
	m.mu.Lock()
	for _, mt := range m.tasks {
		if r := mt.task.Room(); r.RoomID == id || (r.ShortID != 0 && r.ShortID == id) {
			m.mu.Unlock()
			return r, nil
		}
	}
	m.mu.Unlock()
	init, err := m.api.ResolveRoom(ctx, id)
	if err != nil {
		return Room{}, err
	}
	return Room{RoomID: init.RoomID, ShortID: init.ShortID, UID: init.UID}, nil
}

// Acquire adds a reference to the room with the short or real id, starting
// its task if it has none, and returns the task. With record set the task
// records broadcasts; otherwise the reference only watches.
func (m *Manager) Acquire(ctx context.Context, id int64, record bool) (*Task, error) {
	room, err := m.Resolve(ctx, id)
	if err != nil {
		return nil, err
	}
	return m.AcquireRoom(room, record)
}

// AcquireRoom is Acquire for a room whose real id the caller knows already
// (from the database, or a lookup of its own). It asks Bilibili nothing, so
// it cannot fail for Bilibili's reasons: a restart under risk control
// still resumes every room, whose tasks then back off on their own.
func (m *Manager) AcquireRoom(room Room, record bool) (*Task, error) {
	if room.RoomID <= 0 {
		return nil, fmt.Errorf("acquire room %d: not a real room id", room.RoomID)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.shut {
		return nil, ErrShutdown
	}
	mt := m.tasks[room.RoomID]
	if mt == nil || mt.task.Status() == Stopped {
		// A task that stopped by itself (the room was gone, the API
		// unreadable) still holds the references of the chats that follow
		// the room; its successor takes them over, so one chat's Release
		// cannot stop the room for the others.
		next := &managed{task: newTask(room, record, m.api, m.opts, m.poller, m.events.publish)}
		if mt != nil {
			next.record, next.watch = mt.record, mt.watch
		}
		if err := next.task.Start(m.ctx); err != nil {
			return nil, err
		}
		mt = next
		m.tasks[room.RoomID] = mt
	}
	if record {
		mt.record++
	} else {
		mt.watch++
	}
	mt.task.SetRecord(mt.record > 0)
	// Who records the room has changed, and with it maybe the gate's
	// answer about a broadcast in progress.
	mt.task.Recheck()
	return mt.task, nil
}

// Release drops a reference taken by Acquire with the same record flag. The
// task stops, finishing its files, when no reference is left; Release does
// not wait for that (a chat's /stop is answered at once), Shutdown does. It
// returns ErrNotWatched if the room has no task.
func (m *Manager) Release(roomID int64, record bool) error {
	m.mu.Lock()
	mt := m.tasks[roomID]
	if mt == nil {
		m.mu.Unlock()
		return fmt.Errorf("release room %d: %w", roomID, ErrNotWatched)
	}
	if record && mt.record > 0 {
		mt.record--
	} else if !record && mt.watch > 0 {
		mt.watch--
	}
	last := mt.record == 0 && mt.watch == 0
	if last {
		delete(m.tasks, roomID)
		// Counted under the lock, so Shutdown (which sets shut under it
		// before waiting) never waits on a count that can still grow.
		// After Shutdown began, its cancel stops the task anyway.
		if !m.shut {
			m.stopping.Add(1)
		}
	}
	shut := m.shut
	m.mu.Unlock()
	if last {
		if !shut {
			go func() {
				defer m.stopping.Done()
				mt.task.Stop()
			}()
		}
	} else {
		mt.task.SetRecord(mt.record > 0)
		mt.task.Recheck()
	}
	return nil
}

// Recheck asks Options.Gate again about the broadcast in progress in a room
// (see Task.Recheck), as when the rules behind its answer changed. A room
// with no task is left alone.
func (m *Manager) Recheck(roomID int64) {
	m.mu.Lock()
	mt := m.tasks[roomID]
	m.mu.Unlock()
	if mt != nil {
		mt.task.Recheck()
	}
}

// Get returns the task for a real room id.
func (m *Manager) Get(roomID int64) (*Task, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mt, ok := m.tasks[roomID]
	if !ok {
		return nil, false
	}
	return mt.task, true
}

// DanmakuConnected reports whether the danmaku websocket of the room
// with this real id is up; false for a room with no task.
func (m *Manager) DanmakuConnected(roomID int64) bool {
	t, ok := m.Get(roomID)
	return ok && t.danmaku.Load()
}

// List returns a snapshot of every task, ordered by room id.
func (m *Manager) List() []TaskInfo {
	m.mu.Lock()
	tasks := make([]*Task, 0, len(m.tasks))
	for _, mt := range m.tasks {
		tasks = append(tasks, mt.task)
	}
	m.mu.Unlock()
	infos := make([]TaskInfo, 0, len(tasks))
	for _, t := range tasks {
		infos = append(infos, t.Info())
	}
	slices.SortFunc(infos, func(a, b TaskInfo) int { return cmp.Compare(a.RoomID, b.RoomID) })
	return infos
}

// Shutdown stops every task, finishing open files, and delivers the events
// that result. It returns ctx's error if the tasks are not all stopped by
// the time ctx ends; they keep finishing in the background, but their
// events are dropped (a file finished then is left for the crash check of
// the next start). Either way no event reaches onEvent after Shutdown
// returns, so its consumer may close what it writes to.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.shut = true
	var tasks []*Task
	for _, mt := range m.tasks {
		tasks = append(tasks, mt.task)
	}
	m.mu.Unlock()
	m.cancel()
	stopped := make(chan struct{})
	go func() {
		for _, t := range tasks {
			<-t.Done()
		}
		m.stopping.Wait()
		<-m.pollerDone
		close(stopped)
	}()
	select {
	case <-stopped:
		m.events.close(true)
		return nil
	case <-ctx.Done():
		m.events.close(false)
		return fmt.Errorf("stop tasks: %w", ctx.Err())
	}
}

// Stats returns running totals over every task since the Manager started.
func (m *Manager) Stats() Stats { return m.stats.snapshot() }
