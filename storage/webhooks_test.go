package storage

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"roomrec/webhook"
)

// hookEvent is a queued event read back.
type hookEvent struct {
	EventType, EventTimestamp, EventId string
	EventData                          struct {
		SessionId, RelativePath, FileOpenTime, FileCloseTime string
		RoomId, ShortId, FileSize                            int64
		Duration                                             float64
		Name, Title, AreaNameParent, AreaNameChild           string
		Recording, Streaming, DanmakuConnected               bool
	}
}

func pendingHooks(t *testing.T, s *Store, url string) []hookEvent {
	t.Helper()
	p, err := s.PendingWebhooks(context.Background(), url, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []hookEvent
	for _, e := range p {
		var ev hookEvent
		if err := json.Unmarshal(e.Body, &ev); err != nil {
			t.Fatalf("event %d: %v\n%s", e.Seq, err, e.Body)
		}
		if ev.EventId != e.ID || ev.EventType != e.Type {
			t.Errorf("event %d is %s %s in its row and %s %s in its body", e.Seq, e.Type, e.ID, ev.EventType, ev.EventId)
		}
		out = append(out, ev)
	}
	return out
}

func types(evs []hookEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.EventType)
	}
	return out
}

const hookURL = "http://127.0.0.1:9/hook"

// Each fact queues its event, with the room as the database knows it and
// roomrec's state after the fact; a repeated fact (LIVE twice, a broadcast
// ended twice) queues nothing more.
func TestWebhookEventsComeWithTheirFacts(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	danmaku := true
	s.opts.DanmakuConnected = func(int64) bool { return danmaku }
	if err := s.RegisterWebhooks(ctx, []string{hookURL}); err != nil {
		t.Fatal(err)
	}
	chat, _ := s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "-100"})
	if _, err := s.Subscribe(ctx, chat.ID, Room{RoomID: 5440}, Record, "admin"); err != nil {
		t.Fatal(err)
	}
	if n := len(pendingHooks(t, s, hookURL)); n != 0 {
		t.Fatalf("%d events for a subscription", n)
	}
	start := time.Date(2026, 11, 24, 20, 0, 0, 0, time.UTC)
	if err := s.UpdateRoom(ctx, Room{RoomID: 5440, ShortID: 1, Anchor: "主播", Title: "今晚打游戏", Area: "单机游戏", ParentArea: "游戏"}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // LIVE twice
		if _, err := s.StartLiveSession(ctx, 5440, start, "key", "今晚打游戏"); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := s.StartRecordingSession(ctx, 5440, start)
	if err != nil {
		t.Fatal(err)
	}
	opened := start.Add(1500 * time.Millisecond)
	for i, p := range []string{"5440/p001.flv", "5440/p002.flv"} {
		if _, err := s.CreateRecording(ctx, NewRecording{RoomID: 5440, LiveStart: start, Path: p, Title: "今晚打游戏", Started: opened}); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			danmaku = false
		}
		if err := s.CompleteRecording(ctx, p, RecordingEnd{Size: 1234, Duration: 2500 * time.Millisecond, Ended: opened.Add(2 * time.Second)}); err != nil {
			t.Fatal(err)
		}
		opened = opened.Add(2 * time.Second)
	}
	if err := s.EndRecordingSession(ctx, 5440, true); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := s.EndLiveSession(ctx, 5440, start, start.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	evs := pendingHooks(t, s, hookURL)
	want := []string{webhook.StreamStarted, webhook.SessionStarted, webhook.FileOpening, webhook.FileClosed,
		webhook.FileOpening, webhook.FileClosed, webhook.SessionEnded, webhook.StreamEnded}
	if got := types(evs); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	seen := map[string]bool{}
	for i, e := range evs {
		d := e.EventData
		if seen[e.EventId] {
			t.Errorf("EventId %s twice", e.EventId)
		}
		seen[e.EventId] = true
		if d.RoomId != 5440 || d.ShortId != 1 || d.Name != "主播" || d.Title != "今晚打游戏" || d.AreaNameParent != "游戏" || d.AreaNameChild != "单机游戏" {
			t.Errorf("%s: room %+v", e.EventType, d)
		}
		if _, err := time.Parse(webhook.TimeLayout, e.EventTimestamp); err != nil {
			t.Errorf("%s: EventTimestamp %q: %v", e.EventType, e.EventTimestamp, err)
		}
		inSession := i >= 1 && i <= 6
		if inSession && d.SessionId != rs.UUID || !inSession && d.SessionId != "" {
			t.Errorf("%s: SessionId %q, want %q", e.EventType, d.SessionId, map[bool]string{true: rs.UUID}[inSession])
		}
		wantRecording := inSession && e.EventType != webhook.SessionEnded
		wantStreaming := i < 6
		if d.Recording != wantRecording || d.Streaming != wantStreaming {
			t.Errorf("%s: Recording %v, Streaming %v; want %v, %v", e.EventType, d.Recording, d.Streaming, wantRecording, wantStreaming)
		}
		if d.DanmakuConnected != (i < 5) {
			t.Errorf("%s: DanmakuConnected %v", e.EventType, d.DanmakuConnected)
		}
	}
	open1, close1 := evs[2].EventData, evs[3].EventData
	if open1.RelativePath != "5440/p001.flv" || close1.RelativePath != open1.RelativePath || open1.FileOpenTime != close1.FileOpenTime {
		t.Errorf("first file: opening %+v, closed %+v", open1, close1)
	}
	if ot, _ := time.Parse(webhook.TimeLayout, open1.FileOpenTime); !ot.Equal(start.Add(1500 * time.Millisecond)) {
		t.Errorf("FileOpenTime %s, want %s", open1.FileOpenTime, start.Add(1500*time.Millisecond))
	}
	if ct, _ := time.Parse(webhook.TimeLayout, close1.FileCloseTime); !ct.Equal(start.Add(3500*time.Millisecond)) || close1.FileSize != 1234 || close1.Duration != 2.5 {
		t.Errorf("FileClosed %+v", close1)
	}
}

// No URL, no events: nothing grows in the database.
func TestNoWebhookEventsWithoutAURL(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	if _, err := s.StartLiveSession(ctx, 5440, time.Now(), "", ""); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.db.QueryRow(`SELECT count(*) FROM webhook_events`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d events queued with no webhook (%v)", n, err)
	}
}

// A fact that fails queues nothing: the event is in the fact's transaction.
func TestAFailedFactQueuesNoEvent(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	s.RegisterWebhooks(ctx, []string{hookURL})
	start := time.Now()
	if _, err := s.CreateRecording(ctx, NewRecording{RoomID: 5440, LiveStart: start, Path: "5440/a.flv", Started: start}); err != nil {
		t.Fatal(err)
	}
	before := len(pendingHooks(t, s, hookURL))
	if _, err := s.CreateRecording(ctx, NewRecording{RoomID: 5440, LiveStart: start, Path: "5440/a.flv", Started: start}); err == nil {
		t.Fatal("the same path indexed twice")
	}
	if err := s.CompleteRecording(ctx, "5440/never.flv", RecordingEnd{Ended: start}); err == nil {
		t.Fatal("completed a recording never indexed")
	}
	if after := len(pendingHooks(t, s, hookURL)); after != before {
		t.Errorf("%d events after two failed facts, want still %d", after, before)
	}
	// The file no chat keeps is deleted as it closes: no FileClosed
	// announces a file that is gone.
	if err := s.CompleteRecording(ctx, "5440/a.flv", RecordingEnd{Ended: start}); err != nil {
		t.Fatal(err)
	}
	if got := types(pendingHooks(t, s, hookURL)); slices.Contains(got, webhook.FileClosed) {
		t.Errorf("events %v: a FileClosed for a file deleted at once", got)
	}
}

// After a crash, the crash check finishes each file and only then queues
// its FileClosed, then ends the session the crash cut.
func TestReconcileAnnouncesRepairedFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "roomrec.db")
	ctx := context.Background()
	s, err := Open(ctx, path, Options{RecordingsDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s.RegisterWebhooks(ctx, []string{hookURL})
	chat, _ := s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "-100"})
	s.Subscribe(ctx, chat.ID, Room{RoomID: 5440}, Record, "admin")
	start := time.Now()
	s.StartLiveSession(ctx, 5440, start, "", "")
	rs, _ := s.StartRecordingSession(ctx, 5440, start)
	for _, p := range []string{"5440/kept.flv", "5440/gone.flv"} {
		if _, err := s.CreateRecording(ctx, NewRecording{RoomID: 5440, LiveStart: start, Path: p, Started: start}); err != nil {
			t.Fatal(err)
		}
	}
	queuedBefore := len(pendingHooks(t, s, hookURL))
	s.Close() // the crash: nothing closed, nothing ended

	s, err = Open(ctx, path, Options{RecordingsDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.RegisterWebhooks(ctx, []string{hookURL}); err != nil {
		t.Fatal(err)
	}
	ended := start.Add(42 * time.Second)
	if _, err := s.Reconcile(ctx, func(rel string) (Repaired, error) {
		if rel == "5440/gone.flv" {
			return Repaired{}, nil
		}
		return Repaired{Found: true, Size: 777, Duration: 41 * time.Second, Ended: ended}, nil
	}); err != nil {
		t.Fatal(err)
	}
	evs := pendingHooks(t, s, hookURL)[queuedBefore:]
	if got := types(evs); !slices.Equal(got, []string{webhook.FileClosed, webhook.SessionEnded}) {
		t.Fatalf("events after the crash check %v, want the repaired file's FileClosed, then SessionEnded", got)
	}
	d := evs[0].EventData
	if d.RelativePath != "5440/kept.flv" || d.FileSize != 777 || d.Duration != 41 || d.SessionId != rs.UUID || d.Recording || d.Streaming {
		t.Errorf("FileClosed after repair: %+v", d)
	}
	if ct, _ := time.Parse(webhook.TimeLayout, d.FileCloseTime); !ct.Equal(time.UnixMilli(ended.UnixMilli())) {
		t.Errorf("FileCloseTime %s, want the repaired end %s", d.FileCloseTime, ended)
	}
	if e := evs[1].EventData; e.SessionId != rs.UUID || e.Recording || e.Streaming {
		t.Errorf("SessionEnded after the crash: %+v", e)
	}
}

// Each URL has its own cursor: an event is kept until every URL is past
// it, a URL added later starts with what comes next, and a URL dropped no
// longer holds events back.
func TestWebhookCursors(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	const a, b, c = "http://a.example/", "http://b.example/", "http://c.example/"
	s.RegisterWebhooks(ctx, []string{a, b})
	s.StartLiveSession(ctx, 1, time.Now(), "", "")
	s.StartLiveSession(ctx, 2, time.Now(), "", "")
	pa, _ := s.PendingWebhooks(ctx, a, 10)
	if len(pa) != 2 {
		t.Fatalf("%d pending for a", len(pa))
	}
	if err := s.WebhookDelivered(ctx, a, pa[1].Seq); err != nil {
		t.Fatal(err)
	}
	if err := s.WebhookGivenUp(ctx, b, pa[0].Seq, "answered 400", time.Now()); err != nil {
		t.Fatal(err)
	}
	count := func() (n int) {
		s.db.QueryRow(`SELECT count(*) FROM webhook_events`).Scan(&n)
		return n
	}
	if n := count(); n != 1 {
		t.Errorf("%d events kept, want the one b has not had", n)
	}
	s.RegisterWebhooks(ctx, []string{a, b, c})
	s.StartLiveSession(ctx, 3, time.Now(), "", "")
	backlog, _ := s.WebhookBacklog(ctx)
	got := map[string]int{}
	for _, bl := range backlog {
		got[bl.URL] = bl.Pending
		if bl.URL == b && (bl.FailingSince.IsZero() || bl.LastError != "answered 400") {
			t.Errorf("b's backlog %+v, want the failure kept", bl)
		}
	}
	if got[a] != 1 || got[b] != 2 || got[c] != 1 {
		t.Errorf("pending %v, want a 1, b 2, c only the event after it was added", got)
	}
	s.RegisterWebhooks(ctx, []string{a})
	if n := count(); n != 1 {
		t.Errorf("%d events kept once b and c are dropped, want a's one", n)
	}
	s.RegisterWebhooks(ctx, nil)
	if n := count(); n != 0 {
		t.Errorf("%d events kept with no URL", n)
	}
	s.StartLiveSession(ctx, 4, time.Now(), "", "")
	if n := count(); n != 0 {
		t.Errorf("%d events queued with no URL", n)
	}
}

// WebhookQueued wakes a waiting worker when an event commits, and not
// before.
func TestWebhookQueuedWakes(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	s.RegisterWebhooks(ctx, []string{hookURL})
	wake := s.WebhookQueued()
	s.UpdateRoom(ctx, Room{RoomID: 1, Title: "x"})
	select {
	case <-wake:
		t.Fatal("woken by a write that queued nothing")
	default:
	}
	s.StartLiveSession(ctx, 1, time.Now(), "", "")
	select {
	case <-wake:
	case <-time.After(time.Second):
		t.Fatal("not woken by a queued event")
	}
}
