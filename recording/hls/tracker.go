package hls

import "time"

// Tracker follows a live playlist across reloads and hands out each segment
// once, by media sequence number. A reload repeats most of the previous
// window; a CDN behind a load balancer may answer with an older copy; the
// window may move on faster than the recorder reloads. Tracker sorts these
// out and says when the playlist has stopped growing. It keeps no clock of
// its own: the caller passes the time of each reload.
//
// The zero Tracker never reports a stall; use NewTracker to set one.
type Tracker struct {
	stallReloads int
	stallAfter   time.Duration

	reloaded bool      // Update was called
	started  bool      // a segment was handed out
	next     uint64    // the sequence number of the segment expected next
	idle     int       // reloads in a row that brought nothing new
	lastNew  time.Time // when a reload last brought something new
}

// NewTracker returns a Tracker that reports a stall after stallReloads
// reloads in a row bring no new segment, or once stallAfter has passed since
// the last one that did; a zero value disables that test.
func NewTracker(stallReloads int, stallAfter time.Duration) *Tracker {
	return &Tracker{stallReloads: stallReloads, stallAfter: stallAfter}
}

// Update is what one reload brought.
type Update struct {
	// New holds the segments not handed out before, oldest first. Each
	// segment is handed out once, even if later reloads list it again.
	New []Segment
	// Lost counts the sequence numbers between the last segment handed out
	// and New[0]: segments that left the window before a reload saw them.
	Lost uint64
	// Repeated counts segments of this reload already handed out (the
	// overlap of a rolling window, or all of a stale copy).
	Repeated int
	// Behind says the whole playlist ends before the last segment handed
	// out: a CDN serving an older copy, or a stream that restarted its
	// numbering, which the caller may answer with Reset.
	Behind bool
	// Idle counts the reloads in a row, this one included, that brought
	// nothing new.
	Idle int
	// Stalled says the playlist has stopped growing, by the Tracker's
	// limits.
	Stalled bool
	// Ended says the playlist has #EXT-X-ENDLIST: nothing will be added.
	Ended bool
}

// Update takes the playlist of one reload, fetched at now, and returns what
// is new in it.
func (t *Tracker) Update(p *Playlist, now time.Time) Update {
	u := Update{Ended: p.EndList}
	if !t.reloaded {
		t.reloaded, t.lastNew = true, now
	}
	for i, s := range p.Segments {
		if t.started && s.Seq < t.next {
			u.Repeated++
			continue
		}
		if t.started && len(u.New) == 0 {
			u.Lost = s.Seq - t.next
		}
		u.New = p.Segments[i:]
		break
	}
	if n := len(p.Segments); t.started && n > 0 && p.Segments[n-1].Seq+1 < t.next {
		u.Behind = true
	}
	if len(u.New) > 0 {
		t.started = true
		t.next = u.New[len(u.New)-1].Seq + 1
		t.idle = 0
		t.lastNew = now
	} else {
		t.idle++
	}
	u.Idle = t.idle
	u.Stalled = (t.stallReloads > 0 && t.idle >= t.stallReloads) ||
		(t.stallAfter > 0 && now.Sub(t.lastNew) >= t.stallAfter)
	return u
}

// Next returns the sequence number the Tracker expects next, and false
// before any segment was handed out.
func (t *Tracker) Next() (uint64, bool) { return t.next, t.started }

// Rewind hands segments out again from seq on, for segments the caller
// was handed but could not take (the connection broke before it fetched
// them), so the next Update offers them while the playlist still lists
// them. A seq at or after the next expected one changes nothing.
func (t *Tracker) Rewind(seq uint64) {
	if t.started && seq < t.next {
		t.next = seq
	}
}

// Reset forgets every segment handed out, so that the next Update takes its
// whole playlist as new: for a new stream URL, or a stream that restarted
// its numbering.
func (t *Tracker) Reset() {
	*t = Tracker{stallReloads: t.stallReloads, stallAfter: t.stallAfter}
}
