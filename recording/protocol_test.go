package recording_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"roomrec/bilibili"
	"roomrec/bilibili/bilibilitest"
	"roomrec/recording"
)

// When Bilibili changes an endpoint's shape, retrying cannot help: the task
// stops with one unrecoverable error instead of looping.
func TestChangedAPIStopsTaskWithError(t *testing.T) {
	h := newHarness(t, harnessConfig{opts: func(o *recording.Options) {
		o.RetryBackoff, o.MaxBackoff = 10*time.Millisecond, 20*time.Millisecond
	}})
	// The room's checks: the bulk call (the anchor is known from
	// room_init), and room info, which the poller asks about the room
	// alone once the bulk answer cannot be read.
	h.sim.ChangedAPI(bilibilitest.PathRoomsOfAnchors, 1000)
	h.sim.ChangedAPI(bilibilitest.PathRoomInfo, 1000)
	task, err := h.mgr.Acquire(context.Background(), testRoom, true)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-task.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("task kept retrying an API it cannot read")
	}
	if !errors.Is(task.Err(), bilibili.ErrProtocol) {
		t.Errorf("Err = %v, want ErrProtocol", task.Err())
	}
	// Events are delivered on their own goroutine, so the error may land
	// just after the task ends.
	waitCount[recording.TaskError](t, h.events, 1, 5*time.Second)
	time.Sleep(100 * time.Millisecond) // room for a second one, which must not come
	errs := ofType[recording.TaskError](h.events)
	if len(errs) != 1 || errs[0].Kind != recording.ErrorProtocol || errs[0].Recoverable {
		t.Errorf("TaskErrors = %+v, want one unrecoverable protocol error", errs)
	}
	if n := h.sim.Requests(bilibilitest.PathRoomInfo); n > 3 {
		t.Errorf("%d room info requests, want the task to stop at the first unreadable answer", n)
	}
}
