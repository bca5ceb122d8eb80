package recording_test

import (
	"context"
	"testing"
	"time"

	"roomrec/bilibili/bilibilitest"
	"roomrec/recording"
)

// A task that stopped by itself (here: an API it cannot read) keeps the
// references the chats hold: re-acquiring the room starts a new task that
// inherits them, so one chat's /stop does not stop the room for the others.
func TestStoppedTaskKeepsItsReferences(t *testing.T) {
	h := newHarness(t, harnessConfig{opts: func(o *recording.Options) {
		o.RetryBackoff, o.MaxBackoff = 10*time.Millisecond, 20*time.Millisecond
	}})
	room := recording.Room{RoomID: testRoom, ShortID: 1}
	h.sim.ChangedAPI(bilibilitest.PathRoomInfo, 3)
	first, err := h.mgr.AcquireRoom(room, true) // chat A records
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.mgr.AcquireRoom(room, false); err != nil { // chat B watches
		t.Fatal(err)
	}
	select {
	case <-first.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("task kept running on an API it cannot read")
	}

	// Chat C records the room: a new task, holding all three references.
	second, err := h.mgr.AcquireRoom(room, true)
	if err != nil {
		t.Fatal(err)
	}
	if second == first {
		t.Fatal("a stopped task was handed out again")
	}
	if err := h.mgr.Release(testRoom, true); err != nil { // A stops
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // a Release stops its task in the background
	if s := second.Status(); s == recording.Stopped {
		t.Fatal("the task stopped although chats B and C still follow the room")
	}
	if !second.Info().Record {
		t.Error("the task stopped recording although chat C still records")
	}
	if err := h.mgr.Release(testRoom, true); err != nil { // C stops
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if second.Status() == recording.Stopped || second.Info().Record {
		t.Errorf("after the last record reference: status %s, record %v; want watching on for chat B", second.Status(), second.Info().Record)
	}
	if err := h.mgr.Release(testRoom, false); err != nil { // B stops
		t.Fatal(err)
	}
	select {
	case <-second.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the task still runs after every reference was released")
	}
}

// When the last recording reference goes while the room is live, the file
// finishes at once (a clean close, not an interruption) and no new file
// starts; the room stays watched and live.
func TestLastRecordReferenceStopsTheDownload(t *testing.T) {
	h := newHarness(t, harnessConfig{live: true})
	if _, err := h.mgr.AcquireRoom(recording.Room{RoomID: testRoom}, false); err != nil { // a chat that watches
		t.Fatal(err)
	}
	task := h.start() // and one that records
	waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
	record(500 * time.Millisecond)
	if err := h.mgr.Release(testRoom, true); err != nil {
		t.Fatal(err)
	}
	closed := waitCount[recording.FileClosed](t, h.events, 1, 3*time.Second)
	if closed[0].Interrupted {
		t.Errorf("the file closed as interrupted: %+v", closed[0])
	}
	probe(t, h.dir+"/"+closed[0].Path)
	requests := h.room.StreamRequests()
	record(1500 * time.Millisecond)
	if n := h.room.StreamRequests(); n != requests {
		t.Errorf("%d stream requests after recording stopped", n-requests)
	}
	if opened := ofType[recording.FileOpened](h.events); len(opened) != 1 {
		t.Errorf("%d files opened, want the one before the release", len(opened))
	}
	info := task.Info()
	if info.Status == recording.Recording || !info.Live || info.Record {
		t.Errorf("task %+v: want live, watched, not recording", info)
	}
	if ended := ofType[recording.LiveEnded](h.events); len(ended) != 0 {
		t.Errorf("the broadcast ended with the download: %+v", ended)
	}

	// Recording again while still live continues the broadcast in a new file.
	if _, err := h.mgr.AcquireRoom(recording.Room{RoomID: testRoom}, true); err != nil {
		t.Fatal(err)
	}
	waitCount[recording.FileOpened](t, h.events, 2, 5*time.Second)
	record(300 * time.Millisecond)
	files := h.endAndCollect()
	if len(files) != 2 || files[1].Part != 2 {
		t.Errorf("files %+v, want two parts of one broadcast", files)
	}
	if started := ofType[recording.LiveStarted](h.events); len(started) != 1 {
		t.Errorf("LiveStarted sent %d times, want 1", len(started))
	}
}

// Shutdown that runs out of time still guarantees that no event reaches
// the consumer after it returns: the database behind the consumer is
// closed next. A file that finishes late is left for the crash check.
func TestShutdownTimeoutDeliversNothingAfterReturn(t *testing.T) {
	release := make(chan struct{})
	h := newHarness(t, harnessConfig{live: true, opts: func(o *recording.Options) {
		o.CreateFile = func(path string) (recording.File, error) {
			f, err := recording.CreateFile(path)
			if err != nil {
				return nil, err
			}
			return slowClose{File: f, release: release}, nil
		}
	}})
	var returned time.Time
	late := make(chan recording.Event, 16)
	h.events.onAdd = func(e recording.Event) {
		if !returned.IsZero() {
			late <- e
		}
	}
	h.start()
	waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := h.mgr.Shutdown(ctx); err == nil {
		t.Fatal("Shutdown returned no error although a file could not be finished in time")
	}
	h.events.mu.Lock()
	returned = time.Now()
	h.events.mu.Unlock()
	close(release)
	select {
	case e := <-late:
		t.Fatalf("event %T delivered after Shutdown returned", e)
	case <-time.After(500 * time.Millisecond):
	}
}

// slowClose is a file whose Close waits for release: a disk that hangs.
type slowClose struct {
	recording.File
	release chan struct{}
}

func (f slowClose) Close() error {
	<-f.release
	return f.File.Close()
}
