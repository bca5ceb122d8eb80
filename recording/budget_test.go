package recording_test

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"roomrec/bilibili"
	"roomrec/bilibili/bilibilitest"
	"roomrec/recording"
)

// manyRooms starts the simulator with n offline rooms (ids 100000 on,
// anchors' uids 7 times that) and a Manager whose client draws on budget,
// and acquires every room as a restart resumes them: with the anchor's uid
// from the database.
func manyRooms(t *testing.T, n int, budget *bilibili.Budget, opts func(*recording.Options)) (*bilibilitest.Server, *recording.Manager, *eventLog) {
	return manyRoomsWith(t, n, nil, budget, opts)
}

// manyRoomsWith is manyRooms with the rooms in live live from the start.
func manyRoomsWith(t *testing.T, n int, live []int64, budget *bilibili.Budget, opts func(*recording.Options)) (*bilibilitest.Server, *recording.Manager, *eventLog) {
	t.Helper()
	sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 4})
	for i := range n {
		id := int64(100000 + i)
		sim.AddRoom(bilibilitest.RoomConfig{RoomID: id, Live: slices.Contains(live, id)})
	}
	return manyRoomsOn(t, sim, n, budget, opts)
}

// manyRoomsOn is manyRooms on a simulator that has the rooms already.
func manyRoomsOn(t *testing.T, sim *bilibilitest.Server, n int, budget *bilibili.Budget, opts func(*recording.Options)) (*bilibilitest.Server, *recording.Manager, *eventLog) {
	t.Helper()
	api := bilibili.NewClient(bilibili.Options{Endpoints: bilibili.SingleEndpoint(sim.URL()), Budget: budget}, &http.Client{}, nil)
	o := recording.Options{
		Dir:          t.TempDir(),
		RetryBackoff: 100 * time.Millisecond,
		MaxBackoff:   time.Second,
		Danmaku:      recording.DanmakuOptions{HeartbeatInterval: 30 * time.Second, ReadTimeout: time.Minute},
		Logger:       slog.New(slog.DiscardHandler),
	}
	if opts != nil {
		opts(&o)
	}
	events := newEventLog()
	mgr := recording.NewManager(api, o, events.add)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := mgr.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	for i := range n {
		id := int64(100000 + i)
		if _, err := mgr.AcquireRoom(recording.Room{RoomID: id, UID: id * 7}, true); err != nil {
			t.Fatal(err)
		}
	}
	return sim, mgr, events
}

// connectedRooms counts the rooms of manyRooms with a danmaku websocket.
func connectedRooms(sim *bilibilitest.Server, n int) int {
	connected := 0
	for i := range n {
		connected += min(sim.DanmakuConnections(int64(100000+i)), 1)
	}
	return connected
}

// A thousand rooms at start-up: Bilibili never sees more than the budget
// allows (its burst, then its rate), the rooms that are live are learned
// from a few bulk calls and recorded before the websockets have all
// connected, and every room gets its websocket. The budget is the
// default's burst at 25 times its rate, so the test takes seconds, not
// the eight minutes 1,000 connects take at 2 a second.
func TestStartupOfAThousandRoomsStaysInBudget(t *testing.T) {
	const n, perSecond, burst = 1000, 50, bilibili.DefaultBurst
	live := []int64{100007, 100500, 100993}
	start := time.Now()
	sim, _, events := manyRoomsWith(t, n, live, bilibili.NewBudget(perSecond, burst), nil)

	files := waitCount[recording.FileOpened](t, events, len(live), 20*time.Second)
	recordedAt := time.Since(start)
	connected := connectedRooms(sim, n)
	if connected >= n {
		t.Errorf("the live rooms were recorded only once all %d websockets were up", n)
	}
	got := map[int64]bool{}
	for _, f := range files {
		got[f.Room.RoomID] = true
	}
	for _, id := range live {
		if !got[id] {
			t.Errorf("live room %d not recorded (files: %+v)", id, files)
		}
	}
	t.Logf("live rooms recorded %s after start, with %d of %d websockets up", recordedAt.Round(time.Millisecond), connected, n)

	waitUntil(t, 2*time.Minute, "every websocket", func() bool { return connectedRooms(sim, n) == n })
	t.Logf("every websocket up after %s", time.Since(start).Round(time.Millisecond))

	// The simulator logs a request when it arrives, some way behind the
	// token the client took for it; under the race detector on a busy
	// machine that lag varies by tens of milliseconds, so requests sent
	// in step can arrive bunched. A window may hold what the budget
	// allows in it plus what it allows in that jitter (200 ms), and one
	// token refilled at the window's edge. Without a budget, the 1,000
	// connects arrive within a second or two: hundreds in any window.
	const jitter = 200 * time.Millisecond
	log := sim.RequestLog()
	for _, w := range []time.Duration{100 * time.Millisecond, time.Second, 5 * time.Second} {
		allowed := burst + int(float64(perSecond)*(w+jitter).Seconds()) + 1
		got := maxInWindow(log, w)
		if got > allowed {
			t.Errorf("%d requests within %s; the budget allows %d", got, w, allowed)
		}
		t.Logf("at most %d requests within %s (allowed %d)", got, w, allowed)
	}
	if got := maxInWindow(log, 0); got > 1 {
		t.Fatalf("maxInWindow is broken: %d in an empty window", got)
	}
	// Who is live was learned in bulk: no room was asked about alone.
	if n := sim.Requests(bilibilitest.PathRoomInfo); n > len(live) {
		t.Errorf("%d room info requests; want none beyond one alert's each (%d)", n, len(live))
	}
	if bulk := sim.Requests(bilibilitest.PathRoomsOfAnchors); bulk < n/bilibili.MaxAnchorsPerCall || bulk > 2*n/bilibili.MaxAnchorsPerCall {
		t.Errorf("%d bulk calls for %d rooms, want about %d", bulk, n, n/bilibili.MaxAnchorsPerCall)
	}
}

// maxInWindow returns the most requests of log within any window of
// length d (at least one, where there are any).
func maxInWindow(log []bilibilitest.Request, d time.Duration) int {
	most := 0
	for i := range log {
		j := i
		for j < len(log) && log[j].At.Sub(log[i].At) < d {
			j++
		}
		most = max(most, max(j-i, 1))
	}
	return most
}

// The safety-net poll asks about every room in bulk calls of up to 100
// anchors, never one room info call per room.
func TestPollAsksInBulk(t *testing.T) {
	const n = 250
	sim, _, _ := manyRooms(t, n, bilibili.NewBudget(rate.Inf, 0), func(o *recording.Options) { o.PollInterval = time.Second })
	waitUntil(t, time.Minute, "every websocket", func() bool { return connectedRooms(sim, n) == n })
	before := sim.Requests(bilibilitest.PathRoomsOfAnchors)
	time.Sleep(5 * time.Second) // about five polls of every room
	bulk := sim.Requests(bilibilitest.PathRoomsOfAnchors) - before
	if n := sim.Requests(bilibilitest.PathRoomInfo); n != 0 {
		t.Errorf("%d room info requests; the poll should ask in bulk only", n)
	}
	// 250 rooms are 3 calls a round; 4 to 6 rounds fit in 5 s of a 1 s
	// interval with ±20% jitter.
	if bulk < 3*3 || bulk > 3*7 {
		t.Errorf("%d bulk calls in 5 s for %d rooms polled every second, want 3 a round", bulk, n)
	}
}

// A bulk answer roomrec cannot read stops no room: each is then asked
// about on its own, and a room whose own answers read keeps running.
func TestUnreadableBulkAnswerFallsBackToRoomInfo(t *testing.T) {
	const n = 3
	sim := bilibilitest.Start(t, bilibilitest.Config{})
	for i := range n {
		sim.AddRoom(bilibilitest.RoomConfig{RoomID: int64(100000 + i)})
	}
	sim.ChangedAPI(bilibilitest.PathRoomsOfAnchors, 1000)
	_, mgr, _ := manyRoomsOn(t, sim, n, nil, func(o *recording.Options) { o.PollInterval = 300 * time.Millisecond })
	time.Sleep(3 * time.Second) // several polls
	for _, info := range mgr.List() {
		if info.Status == recording.Stopped {
			t.Errorf("room %d stopped (%v) over unreadable bulk answers", info.RoomID, info.Err)
		}
	}
	if got := sim.Requests(bilibilitest.PathRoomInfo); got < n {
		t.Errorf("%d room info requests, want each room asked about alone", got)
	}
}

// Calls waiting for the budget do not go out once Bilibili has refused
// one of them: the risk gate is asked again when their turn comes.
func TestQueuedCallsStopAtAClosedGate(t *testing.T) {
	const n = 30
	sim := bilibilitest.Start(t, bilibilitest.Config{})
	for i := range n {
		sim.AddRoom(bilibilitest.RoomConfig{RoomID: int64(100000 + i)})
	}
	sim.RiskControl(bilibilitest.PathDanmuInfo, 1000)
	manyRoomsOn(t, sim, n, bilibili.NewBudget(5, 5), func(o *recording.Options) { o.RiskBackoff, o.MaxBackoff = time.Minute, time.Minute })
	time.Sleep(4 * time.Second) // 20 tokens' worth: every connect queued by now
	// The bulk check first; then connects, until the first -352 closes
	// the gate (a couple may have been sent before the answer came).
	if got := sim.Requests(bilibilitest.PathDanmuInfo); got == 0 || got > 3 {
		t.Errorf("%d danmaku info requests reached Bilibili after it refused the first; want 1 to 3", got)
	}
}
