package recording

import (
	"sync"
	"time"

	"roomrec/bilibili"
)

// Room identifies a room in events, with what a chat message needs to name it.
type Room struct {
	RoomID  int64
	ShortID int64
	Anchor  string
	UID     int64 // the anchor's; 0 when not known, which costs the room a call of its own at each check
}

// Event is something that happened to a room's task. Events are delivered
// in order, one at a time, from a goroutine of the Manager's own.
type Event interface {
	EventRoom() Room
}

// LiveStarted is sent once per broadcast, when a room is seen to go live.
// It carries everything an alert shows. LiveStart identifies the broadcast:
// it is the same for every event about it, across reconnects and restarts.
type LiveStarted struct {
	Room
	Title, Cover       string
	Area, ParentArea   string
	LiveKey            string // Bilibili's live_key when the push carried it
	LiveStart          time.Time
	Record             bool // whether roomrec records it (a reference records the room and Options.Gate admits it), or only watches
	AlreadyLiveAtStart bool // the room was live when the task started
	// Requested is the qn asked for; Stream is what Bilibili serves, when
	// roomrec records and play info answered in time (else zero).
	Requested int
	Stream    Stream
}

// RecordingStarted is sent when a download for a broadcast begins, once
// Bilibili has said which stream it serves.
type RecordingStarted struct {
	Room
	LiveStart time.Time
	Requested int    // the qn asked for (Options.Quality)
	Stream    Stream // what is recorded: the qn served may be lower
}

// RecordingEnded is sent when the download a RecordingStarted began is
// over, after the FileClosed of its last file: the room ended
// (RoomEnded), the download failed and will start again (with a new
// RecordingStarted), no chat records the room any more, or roomrec is
// stopping.
type RecordingEnded struct {
	Room
	LiveStart time.Time
	RoomEnded bool // the broadcast is over; a LiveEnded follows
}

// Stream is the stream a recording is made from, as Bilibili served it.
type Stream struct {
	Qn     int    // the quality served: 10000 原画, 400 蓝光, 250 超清, 150 高清, 80 流畅
	Format string // "flv", "fmp4" or "ts"
	Codec  string // "avc" (H.264) or "hevc" (H.265)
}

// QualityName is the served qn as the website names it: 原画, 蓝光, ….
func (s Stream) QualityName() string { return bilibili.QualityName(s.Qn) }

// FileOpened is sent when a new video file is created.
type FileOpened struct {
	Room
	LiveStart time.Time
	Path      string // relative to the recordings directory, final name (without .part)
	Part      int
	Title     string
	Opened    time.Time
	Stream    Stream // the stream the file is made from
}

// FileClosed is sent when a video file has been finished: synced, renamed
// to its final name and the rename synced. If any of that failed, Err says
// why and Path names the file as it really is on disk (the .part name when
// it was not renamed); such a file is not finished, must not be indexed as
// complete, and is left for Recover at the next start.
type FileClosed struct {
	Room
	LiveStart   time.Time
	Path        string // relative to the recordings directory; the final name unless Err
	DanmakuPath string // relative to the recordings directory; empty if none was written
	Part        int
	Title       string
	Size        int64
	Duration    time.Duration // media duration
	Opened      time.Time
	Closed      time.Time
	Interrupted bool  // the file ended because of an error, not a clean end or split
	Err         error // non-nil: the file was not finished on disk (see above); Interrupted is set too
}

// LiveEnded is sent when a broadcast is over.
type LiveEnded struct {
	Room
	Title     string
	LiveStart time.Time
	Duration  time.Duration // wall time from LiveStart to the end
	Files     int
	Bytes     int64
}

// TitleChanged is sent when a room's title changes. During a broadcast
// the gate (Options.Gate) has been asked again by then: Record says whether
// the broadcast is recorded from now on.
type TitleChanged struct {
	Room
	Old, New  string
	LiveStart time.Time // the broadcast in progress; zero when the room is offline
	Record    bool
}

// BroadcastInfo is what Options.Gate is told of a broadcast.
type BroadcastInfo struct {
	Start time.Time // when it started, as Bilibili says (LiveStarted.LiveStart)
	Title string    // the title now
}

// ErrorKind says what went wrong in a TaskError, for messages and metrics.
type ErrorKind string

const (
	ErrorRiskControl ErrorKind = "risk_control"
	ErrorDisk        ErrorKind = "disk"
	ErrorNetwork     ErrorKind = "network"
	ErrorRoomGone    ErrorKind = "room_gone"
	ErrorProtocol    ErrorKind = "protocol" // Bilibili's answers no longer have the shape roomrec knows
	ErrorInternal    ErrorKind = "internal"
	ErrorFormat      ErrorKind = "format"    // the stream has something the file's container cannot hold
	ErrorNoStream    ErrorKind = "no_stream" // live, but only in stream kinds Options.StreamOrder leaves out
)

// TaskError reports a condition a chat may need to act on. It is sent once
// when the condition starts, not once per retry. Recoverable errors are
// retried by the task; an unrecoverable one stops it.
type TaskError struct {
	Room
	Kind        ErrorKind
	Err         error
	Recoverable bool
}

// TaskRecovered is sent when a condition reported by a TaskError is over.
type TaskRecovered struct {
	Room
	Kind ErrorKind
}

func (e LiveStarted) EventRoom() Room      { return e.Room }
func (e RecordingStarted) EventRoom() Room { return e.Room }
func (e RecordingEnded) EventRoom() Room   { return e.Room }
func (e FileOpened) EventRoom() Room       { return e.Room }
func (e FileClosed) EventRoom() Room       { return e.Room }
func (e LiveEnded) EventRoom() Room        { return e.Room }
func (e TitleChanged) EventRoom() Room     { return e.Room }
func (e TaskError) EventRoom() Room        { return e.Room }
func (e TaskRecovered) EventRoom() Room    { return e.Room }

// eventQueue hands events to a consumer without ever blocking the producer:
// a download must not wait for a chat message to be sent. The queue is
// unbounded, since losing an event (a FileClosed) loses a recording from the
// archive; events are small and rare next to stream data.
type eventQueue struct {
	mu      sync.Mutex
	pending []Event
	wake    chan struct{}
	done    chan struct{}
	closed  bool
	dropped bool // closed without delivering what was queued
}

func newEventQueue(consume func(Event)) *eventQueue {
	q := &eventQueue{wake: make(chan struct{}, 1), done: make(chan struct{})}
	go q.run(consume)
	return q
}

// publish adds e to the queue. Events published after close are dropped.
func (q *eventQueue) publish(e Event) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.pending = append(q.pending, e)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// close stops the queue. With deliver, what is queued is consumed first;
// without, it is dropped (the consumer's own resources are about to go).
// Either way, once close returns the consumer is never called again.
func (q *eventQueue) close(deliver bool) {
	q.mu.Lock()
	q.closed = true
	if !deliver {
		q.dropped = true
		q.pending = nil
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	<-q.done
}

func (q *eventQueue) run(consume func(Event)) {
	defer close(q.done)
	for range q.wake {
		for {
			q.mu.Lock()
			batch := q.pending
			q.pending = nil
			closed := q.closed
			q.mu.Unlock()
			if len(batch) == 0 {
				if closed {
					return
				}
				break
			}
			for _, e := range batch {
				q.mu.Lock()
				dropped := q.dropped
				q.mu.Unlock()
				if dropped {
					return
				}
				consume(e)
			}
		}
	}
}
