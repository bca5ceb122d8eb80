package recording

import (
	"context"
	"errors"
	"sync"
	"time"

	"roomrec"
	"roomrec/bilibili"
)

// gatherDelay is how long a check due now waits for others to share its
// call: a resume of a thousand rooms starts their tasks within moments of
// each other, and they are asked about in tens of calls rather than a
// thousand.
const gatherDelay = 100 * time.Millisecond

// poller is the safety net under every task's danmaku websocket, and what
// each task learns its room's state from at start. It asks Bilibili about
// the rooms of up to bilibili.MaxAnchorsPerCall anchors in one call, at a
// task's start, every PollInterval after (±20%, the rooms of one call
// staying together) and when a task asks (its websocket came back and a
// push may have been missed). A room whose anchor is not known yet, or
// that a bulk answer leaves out, is asked about on its own with room
// info, one room at a time; that answer also says whether the room still
// exists.
//
// Only the first check of a task is urgent: later ones are patient
// (bilibili.Patient) and wait behind every call someone waits on.
type poller struct {
	api  API
	opts Options
	wake chan struct{}
	solo chan struct{} // wakes the room-info worker

	mu     sync.Mutex
	rooms  map[*Task]*pollState
	queued []*Task // for a room info call of their own, in order
}

// pollState is the poller's view of one task.
type pollState struct {
	uid      int64         // the anchor, 0 until known
	due      time.Time     // next check
	answered bool          // the task has had its first answer
	busy     bool          // a call about the room is under way
	alone    bool          // the next check is a room info of the room's own
	failures int           // calls in a row that failed
	garbled  int           // unreadable answers about this room in a row
	recheck  bool          // asked for again while a call was under way
	added    time.Time     // when the task was added
	checked  chan struct{} // closed at the first answer or failure
}

// maxGather bounds how long first checks wait for more tasks to join them.
const maxGather = time.Second

func newPoller(api API, opts Options) *poller {
	return &poller{
		api: api, opts: opts,
		wake:  make(chan struct{}, 1),
		solo:  make(chan struct{}, 1),
		rooms: map[*Task]*pollState{},
	}
}

// run polls until ctx ends and every call it started has returned.
func (p *poller) run(ctx context.Context) {
	var calls sync.WaitGroup
	defer calls.Wait()
	calls.Go(func() { p.runAlone(ctx) })
	for {
		batches, next := p.take(p.opts.Now())
		for _, b := range batches {
			calls.Go(func() { p.askBulk(ctx, b) })
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(p.opts.Now()), time.Millisecond)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-p.wake:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// add makes the poller check t's room: soon, together with the others
// added about now.
// It returns a channel closed once the first check has answered (or
// failed): the task connects its websocket only then, so that at start-up
// the budget goes to learning who is live before it goes to connects.
func (p *poller) add(t *Task) <-chan struct{} {
	now := p.opts.Now()
	s := &pollState{uid: t.Room().UID, due: now.Add(gatherDelay), added: now, checked: make(chan struct{})}
	p.mu.Lock()
	// While tasks keep being added, the first checks already waiting
	// wait with them (up to maxGather), so that they share full calls.
	for _, o := range p.rooms {
		if !o.answered && !o.busy {
			o.due = maxTime(o.due, minTime(s.due, o.added.Add(maxGather)))
		}
	}
	p.rooms[t] = s
	p.mu.Unlock()
	p.poke(p.wake)
	return s.checked
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// checkedOnce marks s's first check done. p.mu must be held.
func (s *pollState) checkedOnce() {
	select {
	case <-s.checked:
	default:
		close(s.checked)
	}
}

// remove stops checking t's room; an answer under way is still delivered.
func (p *poller) remove(t *Task) {
	p.mu.Lock()
	delete(p.rooms, t)
	p.mu.Unlock()
}

// now asks for a check of t's room soon, unless one is under way.
func (p *poller) now(t *Task) {
	p.mu.Lock()
	if s := p.rooms[t]; s != nil {
		if s.busy {
			s.recheck = true
		} else {
			s.due = p.opts.Now().Add(gatherDelay)
		}
	}
	p.mu.Unlock()
	p.poke(p.wake)
}

func (p *poller) poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// batch is one bulk call's rooms, all first checks or all later ones.
type batch struct {
	tasks  []*Task
	uids   []int64
	urgent bool
}

// take marks the rooms due at now busy and returns them in batches for
// bulk calls (rooms without a known anchor go to the room-info worker),
// and when the next room falls due. A batch with room to spare takes
// rooms due within the jitter of the interval too, so the rooms of a
// resume stay in full calls ever after.
func (p *poller) take(now time.Time) ([]batch, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var urgent, later batch
	urgent.urgent = true
	var next time.Time
	lone := false
	// A first check due now takes every other first check along, due or
	// not: the tasks of a resume register over a while, and their first
	// checks are better asked in full calls now than in many small ones.
	firstDue := false
	for _, s := range p.rooms {
		if !s.busy && !s.answered && s.uid != 0 && !s.alone && !s.due.After(now) {
			firstDue = true
			break
		}
	}
	for t, s := range p.rooms {
		switch {
		case s.busy:
			continue
		case firstDue && !s.answered && s.uid != 0 && !s.alone:
		case s.due.After(now):
			if next.IsZero() || s.due.Before(next) {
				next = s.due
			}
			continue
		}
		s.busy = true
		switch {
		case s.uid == 0 || s.alone:
			// A first check goes ahead of later ones: it is urgent, and a
			// later one may wait long for the budget.
			if !s.answered {
				p.queued = append([]*Task{t}, p.queued...)
			} else {
				p.queued = append(p.queued, t)
			}
			lone = true
		case !s.answered:
			urgent.tasks, urgent.uids = append(urgent.tasks, t), append(urgent.uids, s.uid)
		default:
			later.tasks, later.uids = append(later.tasks, t), append(later.uids, s.uid)
		}
	}
	if lone {
		defer p.poke(p.solo)
	}
	batches := split(urgent)
	if len(later.tasks) > 0 {
		// Fill the last call with rooms that would fall due soon anyway.
		horizon := now.Add(p.opts.PollInterval / 5)
		for t, s := range p.rooms {
			if len(later.tasks)%bilibili.MaxAnchorsPerCall == 0 {
				break
			}
			if !s.busy && s.answered && !s.alone && s.uid != 0 && s.due.Before(horizon) {
				s.busy = true
				later.tasks, later.uids = append(later.tasks, t), append(later.uids, s.uid)
			}
		}
		batches = append(batches, split(later)...)
	}
	return batches, next
}

// split cuts b into calls of at most bilibili.MaxAnchorsPerCall rooms.
func split(b batch) []batch {
	var out []batch
	for len(b.tasks) > 0 {
		n := min(len(b.tasks), bilibili.MaxAnchorsPerCall)
		out = append(out, batch{tasks: b.tasks[:n], uids: b.uids[:n], urgent: b.urgent})
		b.tasks, b.uids = b.tasks[n:], b.uids[n:]
	}
	return out
}

// askBulk makes one bulk call and hands each task its room's answer.
func (p *poller) askBulk(ctx context.Context, b batch) {
	if !b.urgent {
		ctx = bilibili.Patient(ctx)
	}
	rooms, err := p.api.RoomsOfAnchors(ctx, b.uids)
	if ctx.Err() != nil {
		return
	}
	next := p.opts.Now().Add(jitter(p.opts.PollInterval)) // the same for the whole call
	if errors.Is(err, bilibili.ErrProtocol) {
		// An answer roomrec cannot read says nothing about any one room:
		// each is asked about on its own, and only its own unreadable
		// answers count towards giving up on it.
		p.mu.Lock()
		for _, t := range b.tasks {
			if s := p.rooms[t]; s != nil {
				s.alone, s.busy, s.due = true, false, p.opts.Now()
			}
		}
		p.mu.Unlock()
		p.poke(p.wake)
		return
	}
	for i, t := range b.tasks {
		if err != nil {
			p.failed(t, err)
			continue
		}
		info, ok := rooms[b.uids[i]]
		if !ok || info.RoomID != t.id {
			// Bilibili has no room for the anchor (any more), or another
			// one: room info says what became of the room.
			p.mu.Lock()
			if s := p.rooms[t]; s != nil {
				s.alone, s.busy, s.due = true, false, p.opts.Now()
			}
			p.mu.Unlock()
			p.poke(p.wake)
			continue
		}
		p.answered(t, info, next)
	}
	p.poke(p.wake) // the loop learns when these rooms fall due again
}

// runAlone asks room info about queued rooms, one at a time, so that a
// database of rooms whose anchors are not yet known costs the budget's
// steady rate and no more.
func (p *poller) runAlone(ctx context.Context) {
	for {
		p.mu.Lock()
		var t *Task
		if len(p.queued) > 0 {
			t, p.queued = p.queued[0], p.queued[1:]
		}
		first := false
		if s := p.rooms[t]; s != nil {
			first = !s.answered
		}
		p.mu.Unlock()
		if t == nil {
			select {
			case <-ctx.Done():
				return
			case <-p.solo:
			}
			continue
		}
		actx := ctx
		if !first {
			actx = bilibili.Patient(ctx)
		}
		info, err := p.api.RoomInfo(actx, t.id)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			p.failed(t, err)
			continue
		}
		p.answered(t, info, p.opts.Now().Add(jitter(p.opts.PollInterval)))
		p.poke(p.wake)
	}
}

// answered hands t its room's state and schedules the next check.
func (p *poller) answered(t *Task, info bilibili.RoomInfo, next time.Time) {
	p.mu.Lock()
	s := p.rooms[t]
	first, learned := false, false
	if s != nil {
		first = !s.answered
		s.checkedOnce()
		s.answered, s.busy, s.alone = true, false, false
		s.failures, s.garbled = 0, 0
		if info.UID != 0 {
			learned = s.uid != info.UID
			s.uid = info.UID
		}
		s.due = next
		if s.recheck {
			// A websocket came back while this answer was under way:
			// a push may have been missed after it was asked.
			s.recheck, s.due = false, p.opts.Now().Add(gatherDelay)
		}
	}
	p.mu.Unlock()
	if s == nil {
		return // the task is stopping
	}
	if learned && p.opts.OnAnchor != nil {
		p.opts.OnAnchor(Room{RoomID: t.id, UID: info.UID})
	}
	t.recovered(ErrorRiskControl, sourcePoll)
	t.signal(polled{info: info, first: first})
}

// failed counts a failed check of t's room and schedules a retry sooner
// than the interval, with backoff. A room that is gone, or answers Bilibili
// no longer sends in a shape roomrec reads, stop the task.
func (p *poller) failed(t *Task, err error) {
	p.mu.Lock()
	s := p.rooms[t]
	if s == nil {
		p.mu.Unlock()
		return
	}
	s.busy = false
	s.checkedOnce()
	s.failures++
	if errors.Is(err, bilibili.ErrProtocol) {
		s.garbled++
	} else {
		s.garbled = 0
	}
	garbled := s.garbled
	s.due = p.opts.Now().Add(min(jitter(p.opts.PollInterval), backoff(p.opts.RetryBackoff*5, p.opts.MaxBackoff, s.failures)))
	p.mu.Unlock()
	p.poke(p.wake)
	switch {
	case errors.Is(err, bilibili.ErrRoomNotFound):
		p.remove(t)
		t.signal(fatal{kind: ErrorRoomGone, err: err})
	case garbled >= maxProtocolErrors:
		// The same unreadable answer again and again: retrying forever
		// would only hide that roomrec needs an update.
		p.remove(t)
		t.signal(fatal{kind: ErrorProtocol, err: err})
	default:
		t.log.Debug("room check failed", roomrec.LogErr(err))
		if classify(err) == ErrorRiskControl {
			t.reportError(ErrorRiskControl, sourcePoll, err, true)
		}
	}
}
