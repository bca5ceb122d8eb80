package bot

import (
	"context"
	"sync"
	"time"

	"roomrec/recording"
)

// Room problems (recording.TaskError) become chat notices here. Tasks
// already report each condition once; this decides who hears of it, and
// when:
//
//   - The disk and Bilibili's risk control are the server's conditions,
//     not one room's: a chat hears of each once while it lasts, however
//     many of its rooms it touches.
//   - Risk control is routine for a few seconds and handled by backing
//     off; chats hear of it only once it has lasted riskNoticeAfter.
//   - The rest (a stream that cannot be read, a room gone, no stream of
//     a kind roomrec may record, an API roomrec cannot read) are told per
//     room, at once.
const riskNoticeAfter = 2 * time.Minute

// sharedKinds are the conditions of the whole server.
var sharedKinds = map[recording.ErrorKind]bool{recording.ErrorDisk: true, recording.ErrorRiskControl: true}

type problemKey struct {
	kind recording.ErrorKind
	room int64
}

// problems is the notifier's memory of conditions that are on.
type problems struct {
	mu        sync.Mutex
	closed    bool           // after Close: no timer starts or acts
	firing    sync.WaitGroup // timers acting now, added to under mu while open
	active    map[problemKey]bool
	pending   map[problemKey]*pendingNotice
	told      map[recording.ErrorKind]map[int64]bool // storage chat ids told of a shared condition
	riskAfter time.Duration
}

// pendingNotice is a notice waiting for its condition to last.
type pendingNotice struct{ timer *time.Timer }

func newProblems() *problems {
	return &problems{
		active: map[problemKey]bool{}, pending: map[problemKey]*pendingNotice{},
		told: map[recording.ErrorKind]map[int64]bool{}, riskAfter: riskNoticeAfter,
	}
}

// problem takes a TaskError: the notice goes out now, later, or never.
func (n *Notifier) problem(e recording.TaskError) {
	m, ok := problemMessage(e)
	if !ok {
		return
	}
	p := n.problems
	key := problemKey{e.Kind, e.RoomID}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.active[key] = true
	if e.Kind == recording.ErrorRiskControl && p.riskAfter > 0 {
		if p.pending[key] == nil {
			pn := &pendingNotice{}
			p.pending[key] = pn
			pn.timer = time.AfterFunc(p.riskAfter, func() { n.fire(key, m, pn) })
		}
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	n.tell(key, m, nil)
}

// recovered takes a TaskRecovered: a pending notice is dropped, and once
// no room has a shared condition, the chats may hear of it again.
func (n *Notifier) recovered(e recording.TaskRecovered) {
	p := n.problems
	key := problemKey{e.Kind, e.RoomID}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.active, key)
	if pn := p.pending[key]; pn != nil {
		pn.timer.Stop()
		delete(p.pending, key)
	}
	for k := range p.active {
		if k.kind == e.Kind {
			return
		}
	}
	delete(p.told, e.Kind)
}

// fire is a delayed notice's timer going off. It does nothing once the
// notifier is closed, and Close waits for one already acting.
func (n *Notifier) fire(key problemKey, m Message, pn *pendingNotice) {
	p := n.problems
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.firing.Add(1)
	p.mu.Unlock()
	defer p.firing.Done()
	n.tell(key, m, pn)
}

// close stops every pending notice and waits for one being told.
func (p *problems) close() {
	p.mu.Lock()
	p.closed = true
	for key, pn := range p.pending {
		pn.timer.Stop()
		delete(p.pending, key)
	}
	p.mu.Unlock()
	p.firing.Wait()
}

// tell sends a notice to the chats following the room, if its condition
// is still on. pn is the delayed notice it fires for, or nil: a timer that
// fired as its condition ended (and a new one began) must not act.
func (n *Notifier) tell(key problemKey, m Message, pn *pendingNotice) {
	p := n.problems
	p.mu.Lock()
	if pn != nil {
		if p.pending[key] != pn {
			p.mu.Unlock()
			return
		}
		delete(p.pending, key)
	}
	on := p.active[key]
	p.mu.Unlock()
	if !on {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	subs, err := n.store.RoomSubscribers(ctx, key.room)
	if err != nil {
		n.log.Error("notice not sent", "room", key.room, "kind", string(key.kind), "err", err)
		return
	}
	for _, sub := range subs {
		if sharedKinds[key.kind] {
			p.mu.Lock()
			if !p.active[key] {
				// Over while the subscribers were looked up: marking
				// the chat now would silence the next occurrence.
				p.mu.Unlock()
				return
			}
			if p.told[key.kind] == nil {
				p.told[key.kind] = map[int64]bool{}
			}
			already := p.told[key.kind][sub.ID]
			p.told[key.kind][sub.ID] = true
			p.mu.Unlock()
			if already {
				continue
			}
		}
		n.outbox.Send(botChat(sub.Chat), m, nil)
	}
}
