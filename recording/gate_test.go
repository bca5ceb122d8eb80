package recording_test

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"roomrec/recording"
)

// titleGate admits broadcasts whose title lacks a word, and remembers what
// it was asked.
type titleGate struct {
	skip   atomic.Value // string
	mu     sync.Mutex
	asked  []recording.BroadcastInfo
	closed atomic.Bool // admits nothing, whatever the title
}

func newTitleGate(skip string) *titleGate {
	g := &titleGate{}
	g.skip.Store(skip)
	return g
}

func (g *titleGate) admit(room recording.Room, b recording.BroadcastInfo) bool {
	g.mu.Lock()
	g.asked = append(g.asked, b)
	g.mu.Unlock()
	return !g.closed.Load() && !strings.Contains(b.Title, g.skip.Load().(string))
}

func (g *titleGate) questions() []recording.BroadcastInfo {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]recording.BroadcastInfo(nil), g.asked...)
}

// A broadcast the gate turns down is watched, announced as not recorded,
// and never downloaded; a title change that the gate admits starts the
// download then, one it turns down again finishes the file (cleanly, as
// the last /stop does) and the broadcast goes on being watched; Recheck
// asks again when what the gate decides on changes.
func TestGateDecidesWhatIsRecorded(t *testing.T) {
	gate := newTitleGate("回放")
	h := newHarness(t, harnessConfig{title: "昨晚的回放", opts: func(o *recording.Options) { o.Gate = gate.admit }})
	task := h.start()
	h.room.GoLive()
	started := waitCount[recording.LiveStarted](t, h.events, 1, 5*time.Second)
	if started[0].Record || started[0].Stream.Qn != 0 {
		t.Errorf("LiveStarted %+v, want not recorded, with no stream", started[0])
	}
	record(1500 * time.Millisecond) // the second LIVE and a poll
	if n := h.room.StreamRequests(); n != 0 {
		t.Errorf("%d stream requests for a broadcast the gate turned down", n)
	}
	if info := task.Info(); !info.Live || !info.Skipped || info.Status == recording.Recording {
		t.Errorf("task %+v: want live, skipped, not recording", info)
	}
	q := gate.questions()
	if len(q) == 0 || q[0].Title != "昨晚的回放" || !q[0].Start.Equal(started[0].LiveStart) {
		t.Errorf("gate asked %+v, want the title and the start of the broadcast (%s)", q, started[0].LiveStart)
	}

	h.room.SetTitle("正式开播")
	changed := waitCount[recording.TitleChanged](t, h.events, 1, 5*time.Second)
	if c := changed[0]; !c.Record || !c.LiveStart.Equal(started[0].LiveStart) || c.New != "正式开播" {
		t.Errorf("TitleChanged %+v, want recorded from now, in the broadcast", c)
	}
	opened := waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
	if opened[0].Title != "正式开播" {
		t.Errorf("file opened with title %q", opened[0].Title)
	}
	record(time.Second)

	h.room.SetTitle("回放一下")
	closed := waitCount[recording.FileClosed](t, h.events, 1, 5*time.Second)
	if closed[0].Interrupted || closed[0].Err != nil {
		t.Errorf("file closed %+v, want a clean close", closed[0])
	}
	probe(t, h.dir+"/"+closed[0].Path)
	if c := ofType[recording.TitleChanged](h.events); len(c) != 2 || c[1].Record {
		t.Errorf("TitleChanged events %+v, want the second not recorded", c)
	}
	requests := h.room.StreamRequests()
	record(1500 * time.Millisecond)
	if n := h.room.StreamRequests(); n != requests {
		t.Errorf("%d stream requests after the gate turned the broadcast down", n-requests)
	}
	if info := task.Info(); !info.Live || !info.Skipped {
		t.Errorf("task %+v: want live and skipped", info)
	}
	if ended := ofType[recording.LiveEnded](h.events); len(ended) != 0 {
		t.Errorf("the broadcast ended with the download: %+v", ended)
	}

	// What the gate decides on changes (a chat's rules): Recheck.
	gate.skip.Store("不存在的词")
	h.mgr.Recheck(testRoom)
	waitCount[recording.FileOpened](t, h.events, 2, 5*time.Second)
	record(500 * time.Millisecond)
	gate.closed.Store(true)
	task.Recheck()
	waitCount[recording.FileClosed](t, h.events, 2, 5*time.Second)

	files := h.endAndCollect()
	if len(files) != 2 || files[1].Part != 2 {
		t.Errorf("files %+v, want two parts of one broadcast", files)
	}
	if s := ofType[recording.LiveStarted](h.events); len(s) != 1 {
		t.Errorf("LiveStarted sent %d times, want 1", len(s))
	}
}

// A room that only watches asks the gate nothing: it records nothing.
func TestGateIsNotAskedForAWatchedRoom(t *testing.T) {
	gate := newTitleGate("回放")
	h := newHarness(t, harnessConfig{opts: func(o *recording.Options) { o.Gate = gate.admit }})
	if _, err := h.mgr.AcquireRoom(recording.Room{RoomID: testRoom}, false); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "danmaku connection", func() bool { return h.sim.DanmakuConnections(testRoom) > 0 })
	h.room.GoLive()
	waitCount[recording.LiveStarted](t, h.events, 1, 5*time.Second)
	h.room.SetTitle("新标题")
	waitCount[recording.TitleChanged](t, h.events, 1, 5*time.Second)
	if q := gate.questions(); len(q) != 0 {
		t.Errorf("gate asked %+v for a room nobody records", q)
	}
	if info, _ := h.mgr.Get(testRoom); info.Info().Skipped {
		t.Error("a watched room's broadcast reads as skipped")
	}
}
