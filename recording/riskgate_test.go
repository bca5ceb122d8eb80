package recording_test

import (
	"testing"
	"time"

	"roomrec/bilibili/bilibilitest"
	"roomrec/recording"
)

// An HTTP 412 comes from Bilibili's gateway and blocks the whole host: every
// task backs off together, so ten rooms cost a trickle of probes rather than
// ten retry loops, each room reports it once, and all resume when it lifts.
func TestHTTP412BacksOffEveryTaskTogether(t *testing.T) {
	h := newHarness(t, harnessConfig{opts: func(o *recording.Options) {
		o.RiskBackoff, o.MaxBackoff = 300*time.Millisecond, time.Second
	}})
	rooms := []int64{testRoom}
	for id := int64(7001); id < 7010; id++ {
		h.sim.AddRoom(bilibilitest.RoomConfig{RoomID: id, Anchor: "主播"})
		rooms = append(rooms, id)
	}
	h.sim.HTTP412("", 100000)
	for _, id := range rooms {
		if _, err := h.mgr.AcquireRoom(recording.Room{RoomID: id}, true); err != nil {
			t.Fatal(err)
		}
	}
	waitCount[recording.TaskError](t, h.events, len(rooms), 5*time.Second)
	before := h.sim.Requests("")
	time.Sleep(2 * time.Second)
	if n := h.sim.Requests("") - before; n > 30 {
		t.Errorf("%d API requests in 2 s of HTTP 412 from %d rooms; the host is not backed off together", n, len(rooms))
	}
	perRoom := map[int64]int{}
	for _, e := range ofType[recording.TaskError](h.events) {
		if e.Kind != recording.ErrorRiskControl || !e.Recoverable {
			t.Errorf("TaskError %+v, want recoverable risk control", e)
		}
		perRoom[e.RoomID]++
	}
	for _, id := range rooms {
		if perRoom[id] != 1 {
			t.Errorf("room %d reported risk control %d times, want once", id, perRoom[id])
		}
	}

	h.sim.HTTP412("", 0)
	waitUntil(t, 10*time.Second, "every room's danmaku connected after the block lifted", func() bool {
		for _, id := range rooms {
			if h.sim.DanmakuConnections(id) == 0 {
				return false
			}
		}
		return true
	})
	// Risk control is over for a room once its poll, too, has succeeded.
	waitCount[recording.TaskRecovered](t, h.events, len(rooms), 10*time.Second)
}
