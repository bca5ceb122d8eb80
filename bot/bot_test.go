package bot_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"roomrec/bilibili"
	"roomrec/bilibili/bilibilitest"
	"roomrec/bot"
	"roomrec/recording"
	"roomrec/storage"
)

// sent is one message a fake platform received.
type sent struct {
	chat   string
	toUser bool
	id     string
	edit   bool
	msg    bot.Message
	result chan struct{}
}

// fakeSender is a platform that keeps what it is sent.
type fakeSender struct {
	mu       sync.Mutex
	messages []sent
	next     int
	fail     []error // errors to return, in order, before succeeding
	tries    int     // calls to Send, failed ones included
}

var _ bot.Sender = (*fakeSender)(nil)

func (f *fakeSender) Send(_ context.Context, chat bot.Chat, m bot.Message) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tries++
	if len(f.fail) > 0 {
		err := f.fail[0]
		f.fail = f.fail[1:]
		return "", err
	}
	f.next++
	id := fmt.Sprint(f.next)
	f.messages = append(f.messages, sent{chat: chat.ID, toUser: chat.ToUser, id: id, msg: m})
	return id, nil
}

func (f *fakeSender) Edit(_ context.Context, chat bot.Chat, id string, m bot.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.messages = append(f.messages, sent{chat: chat.ID, toUser: chat.ToUser, id: id, edit: true, msg: m})
	return nil
}

// failNext makes the next n sends fail with err.
func (f *fakeSender) failNext(n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = nil
	for range n {
		f.fail = append(f.fail, err)
	}
}

func (f *fakeSender) attempts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tries
}

func (f *fakeSender) all() []sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sent(nil), f.messages...)
}

// world is roomrec's core wired as serve wires it: the simulator, the real
// client, a Manager, a SQLite store, the notifier, and a fake platform.
type world struct {
	sim    *bilibilitest.Server
	room   *bilibilitest.Room
	store  *storage.Store
	mgr    *recording.Manager
	api    *bilibili.Client
	router *bot.Router
	sender *fakeSender
	outbox *bot.Outbox
	dir    string // the data directory; recordings under dir/recordings
}

func newWorld(t testing.TB) *world {
	t.Helper()
	sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 4})
	room := sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, ShortID: 1, Anchor: "主播", Title: "今晚打游戏"})
	dir := t.TempDir()
	store, err := storage.Open(context.Background(), filepath.Join(dir, "roomrec.db"), storage.Options{RecordingsDir: filepath.Join(dir, "recordings")})
	if err != nil {
		t.Fatal(err)
	}
	api := bilibili.NewClient(bilibili.Options{Endpoints: bilibili.SingleEndpoint(sim.URL())}, &http.Client{}, nil)
	sender := &fakeSender{}
	outbox := bot.NewOutbox(nil)
	outbox.AddSender(storage.Telegram, sender, bot.Limits{PerChat: rate.Inf, Global: rate.Inf})
	notifier := bot.NewNotifier(store, outbox, nil)
	mgr := recording.NewManager(api, recording.Options{
		Dir: filepath.Join(dir, "recordings"), PollInterval: time.Second, EndGrace: time.Second,
		RetryBackoff: 100 * time.Millisecond, MaxBackoff: time.Second,
	}, notifier.Handle)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		mgr.Shutdown(ctx)
		outbox.Close()
		store.Close()
	})
	return &world{sim: sim, room: room, store: store, mgr: mgr, api: api, router: bot.NewRouter(store, mgr, api, bot.RouterOptions{}), sender: sender, outbox: outbox, dir: dir}
}

// useRouter replaces the world's router with one given opts.
func (w *world) useRouter(opts bot.RouterOptions) {
	w.router = bot.NewRouter(w.store, w.mgr, w.api, opts)
}

var group = bot.Chat{Platform: storage.Telegram, ID: "-1001", Title: "粉丝群"}

func admin(text string) bot.Request {
	return bot.Request{Chat: group, User: "alice", Text: text, IsAdmin: func(context.Context) (bool, error) { return true, nil }}
}

func member(text string) bot.Request {
	return bot.Request{Chat: group, User: "bob", Text: text, IsAdmin: func(context.Context) (bool, error) { return false, nil }}
}

func (w *world) ask(t *testing.T, req bot.Request) bot.Reply {
	t.Helper()
	return w.router.Handle(context.Background(), req)
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRecordAlertArchiveStop(t *testing.T) {
	w := newWorld(t)
	reply := w.ask(t, admin("/record https://live.bilibili.com/1?spm=x"))
	if reply.Private || !strings.Contains(reply.Text, "主播 — 今晚打游戏 (room 5440)") {
		t.Fatalf("/record reply = %+v, want it to name the anchor and title", reply)
	}
	if again := w.ask(t, admin("/record 5440")); !strings.Contains(again.Text, "already records") {
		t.Errorf("second /record = %q", again.Text)
	}
	waitFor(t, 5*time.Second, "danmaku connection", func() bool { return w.sim.DanmakuConnections(5440) == 1 })

	w.room.GoLive() // LIVE twice
	waitFor(t, 5*time.Second, "the alert", func() bool { return len(w.sender.all()) >= 1 })
	time.Sleep(1500 * time.Millisecond) // the second LIVE and a poll have come and gone
	msgs := w.sender.all()
	if len(msgs) != 1 {
		t.Fatalf("%d messages after going live, want exactly one alert: %+v", len(msgs), msgs)
	}
	alert := msgs[0]
	if alert.chat != group.ID || !strings.Contains(alert.msg.Text, "今晚打游戏") || alert.msg.LinkURL != "https://live.bilibili.com/5440" || alert.msg.PhotoURL == "" {
		t.Errorf("alert = %+v, want title, link and cover", alert.msg)
	}
	if !strings.Contains(alert.msg.Text, "recording in 原画 (H.264)") {
		t.Errorf("alert %q does not say it is recording, and in which quality", alert.msg.Text)
	}

	w.room.EndLive()
	waitFor(t, 10*time.Second, "the ended message", func() bool { return len(w.sender.all()) >= 2 })
	end := w.sender.all()[1]
	if !end.edit || end.id != alert.id || !strings.Contains(end.msg.Text, "Ended after") {
		t.Errorf("end = %+v, want an edit of the alert", end)
	}

	archive := w.ask(t, member("/archive"))
	if !strings.Contains(archive.Text, "1 recordings") || !strings.Contains(archive.Text, "今晚打游戏") {
		t.Errorf("/archive = %q, want the recorded file", archive.Text)
	}
	if list := w.ask(t, member("/list")); !strings.Contains(list.Text, "room 5440") || !strings.Contains(list.Text, "record") {
		t.Errorf("/list = %q", list.Text)
	}
	if stop := w.ask(t, admin("/stop 1")); !strings.Contains(stop.Text, "Stopped following 主播") {
		t.Errorf("/stop = %q", stop.Text)
	}
	if _, ok := w.mgr.Get(5440); ok {
		t.Error("the task still runs after the only chat stopped")
	}
	w.room.GoLive()
	time.Sleep(time.Second)
	if n := len(w.sender.all()); n != 2 {
		t.Errorf("%d messages after /stop and a new broadcast, want still 2", n)
	}
}

func TestWatchOnlyAlertsWithoutRecording(t *testing.T) {
	w := newWorld(t)
	if r := w.ask(t, admin("/watch 5440")); !strings.Contains(r.Text, "not recording") {
		t.Fatalf("/watch = %q", r.Text)
	}
	waitFor(t, 5*time.Second, "danmaku connection", func() bool { return w.sim.DanmakuConnections(5440) == 1 })
	w.room.GoLive()
	waitFor(t, 5*time.Second, "the alert", func() bool { return len(w.sender.all()) == 1 })
	if text := w.sender.all()[0].msg.Text; strings.Contains(text, "recording") {
		t.Errorf("watch-only alert says recording: %q", text)
	}
	time.Sleep(500 * time.Millisecond)
	if n := w.room.StreamRequests(); n != 0 {
		t.Errorf("%d stream requests for a watched room, want none", n)
	}
}

func TestNonAdminIsRefusedAndNothingChanges(t *testing.T) {
	w := newWorld(t)
	for _, cmd := range []string{"/record 5440", "/watch 5440", "/stop 5440"} {
		r := w.ask(t, member(cmd))
		if !r.Private || !strings.Contains(r.Text, "Only admins") {
			t.Errorf("%s by a member = %+v, want a private refusal", cmd, r)
		}
	}
	if r := w.ask(t, member("/list")); !strings.Contains(r.Text, "follows no rooms") {
		t.Errorf("/list after refusals = %q", r.Text)
	}
	if len(w.mgr.List()) != 0 {
		t.Error("a refused command started a task")
	}
	// A private chat is its own admin.
	private := bot.Request{Chat: bot.Chat{Platform: storage.Telegram, ID: "7", Private: true}, Text: "/watch 5440"}
	if r := w.ask(t, private); r.Private {
		t.Errorf("/watch in a private chat = %+v", r)
	}
}

func TestBadInputGetsClearReplies(t *testing.T) {
	w := newWorld(t)
	other := bot.Request{Chat: bot.Chat{Platform: storage.Telegram, ID: "other", Private: true}, Text: "/record 5440"}
	w.ask(t, other)
	w.room.GoLive()
	waitFor(t, 10*time.Second, "a recording in the other chat's archive", func() bool {
		return strings.Contains(w.ask(t, bot.Request{Chat: other.Chat, Text: "/archive"}).Text, "#1 ")
	})
	tests := []struct{ text, want string }{
		{"/record", "Usage: /record <room>"},
		{"/record abc", "not a room number"},
		{"/record -5", "not a room number"},
		{"/record 99999999999999999999", "out of the range"},
		{"/record 1 2", "Usage"},
		{"/record https://example.com/5440", "not a live.bilibili.com link"},
		{"/record 4242", "Bilibili has no room 4242"},
		{"/stop 5440", "does not follow room 5440"},
		{"/archive delete", "Usage: /archive delete <id>"},
		{"/archive delete abc", "not an archive id"},
		{"/archive delete 1", "no recording 1 in this chat's archive"}, // the other chat's
		{"/archive link 999", "no recording 999"},
		{"/frobnicate", "I don't know /frobnicate"},
		{"hello", "Commands start with /"},
		{"/record " + strings.Repeat("5", 600), "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.text[:min(len(tt.text), 30)], func(t *testing.T) {
			r := w.ask(t, admin(tt.text))
			if !r.Private || !strings.Contains(r.Text, tt.want) {
				t.Errorf("reply = %+v, want a private reply containing %q", r, tt.want)
			}
			if len(r.Text) > 300 {
				t.Errorf("reply is %d bytes; want it short", len(r.Text))
			}
		})
	}
	if r := w.ask(t, admin("/list")); !strings.Contains(r.Text, "follows no rooms") {
		t.Errorf("bad input changed the chat's rooms: %q", r.Text)
	}
	if r := w.ask(t, bot.Request{Chat: other.Chat, Text: "/archive"}); !strings.Contains(r.Text, "#1 ") {
		t.Errorf("the other chat lost its recording: %q", r.Text)
	}
}

func TestStatusAndHelp(t *testing.T) {
	w := newWorld(t)
	w.useRouter(bot.RouterOptions{DiskFree: func() (uint64, error) { return 5 << 30, nil }})
	w.ask(t, admin("/record 5440"))
	if r := w.ask(t, member("/status")); !strings.Contains(r.Text, "Watching 1 rooms") || !strings.Contains(r.Text, "5.0 GiB") {
		t.Errorf("/status = %q", r.Text)
	}
	help := w.ask(t, member("/help")).Text
	for _, c := range bot.Commands {
		if !strings.Contains(help, "/"+c.Name) {
			t.Errorf("/help lacks /%s", c.Name)
		}
	}
}

func TestOutboxRetriesAndHonoursRetryAfter(t *testing.T) {
	sender := &fakeSender{fail: []error{&bot.RetryAfter{Wait: 150 * time.Millisecond}, fmt.Errorf("network down")}}
	outbox := bot.NewOutbox(nil)
	defer outbox.Close()
	outbox.AddSender(storage.Telegram, sender, bot.Limits{PerChat: rate.Every(100 * time.Millisecond), PerChatBurst: 1, Global: rate.Inf})
	start := time.Now()
	ids := make(chan string, 3)
	for i := range 3 {
		outbox.Send(group, bot.Message{Text: fmt.Sprint(i)}, func(id string, err error) { ids <- id })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := outbox.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := sender.all()
	if len(msgs) != 3 || msgs[0].msg.Text != "0" || msgs[2].msg.Text != "2" {
		t.Fatalf("delivered %+v, want 0, 1, 2 in order", msgs)
	}
	// 150 ms asked by the 429, then a 1 s backoff after the failure, then
	// the per-chat limit between the three.
	if took := time.Since(start); took < 1150*time.Millisecond {
		t.Errorf("delivered in %s; retry-after or backoff ignored", took)
	}
	if len(ids) != 3 {
		t.Errorf("%d sent callbacks, want 3", len(ids))
	}
}

func newTestOutbox(t *testing.T, sender *fakeSender) *bot.Outbox {
	t.Helper()
	outbox := bot.NewOutbox(nil)
	t.Cleanup(outbox.Close)
	outbox.AddSender(storage.Telegram, sender, bot.Limits{PerChat: rate.Inf, Global: rate.Inf})
	return outbox
}

func flush(t *testing.T, outbox *bot.Outbox) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := outbox.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// A platform down for longer than a handful of retries still gets the
// alert once it is back.
func TestOutboxRetriesThroughAnOutage(t *testing.T) {
	sender := &fakeSender{}
	sender.failNext(25, fmt.Errorf("dial tcp: connection refused"))
	outbox := newTestOutbox(t, sender)
	outbox.SetRetry(time.Millisecond, 5*time.Millisecond, time.Minute)
	outbox.Send(group, bot.Message{Text: "live"}, nil)
	outbox.Send(group, bot.Message{Text: "after"}, nil)
	flush(t, outbox)
	msgs := sender.all()
	if len(msgs) != 2 || msgs[0].msg.Text != "live" || msgs[1].msg.Text != "after" {
		t.Errorf("delivered %+v, want both messages in order after the outage", msgs)
	}
	if st := outbox.Stats()[storage.Telegram]; st.Sent != 2 || st.Failed != 0 {
		t.Errorf("stats = %+v, want 2 sent, 0 failed", st)
	}
}

// A message the platform rejects (bot removed, chat gone) is not retried,
// and the chat's next message still goes.
func TestOutboxGivesUpOnRejectedAtOnce(t *testing.T) {
	sender := &fakeSender{}
	sender.failNext(1, &bot.Rejected{Err: fmt.Errorf("Forbidden: bot was kicked from the group chat")})
	outbox := newTestOutbox(t, sender)
	outcome := make(chan error, 1)
	outbox.Send(group, bot.Message{Text: "refused"}, func(_ string, err error) { outcome <- err })
	outbox.Send(group, bot.Message{Text: "next"}, nil)
	flush(t, outbox)
	if n := sender.attempts(); n != 2 {
		t.Errorf("%d send attempts, want 2: the rejected one is not retried", n)
	}
	if msgs := sender.all(); len(msgs) != 1 || msgs[0].msg.Text != "next" {
		t.Errorf("delivered %+v, want only the next message", msgs)
	}
	if st := outbox.Stats()[storage.Telegram]; st.Sent != 1 || st.Failed != 1 {
		t.Errorf("stats = %+v, want 1 sent, 1 failed", st)
	}
	var rejected *bot.Rejected
	if err := <-outcome; !errors.As(err, &rejected) {
		t.Errorf("the sender was told %v, want the rejection", err)
	}
}

// An alert the chat refused (the bot was removed) is remembered as such: no
// end message follows it, and no restart sends it again.
func TestRejectedAlertIsNotRetried(t *testing.T) {
	w := newWorld(t)
	w.ask(t, admin("/record 5440"))
	waitFor(t, 5*time.Second, "danmaku connection", func() bool { return w.sim.DanmakuConnections(5440) == 1 })
	w.sender.failNext(1, &bot.Rejected{Err: fmt.Errorf("Forbidden: bot was kicked from the group chat")})
	w.room.GoLive()
	db, err := sql.Open("sqlite3", filepath.Join(w.dir, "roomrec.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var kept string
	waitFor(t, 5*time.Second, "the refusal recorded", func() bool {
		return db.QueryRow(`SELECT message_id FROM alerts`).Scan(&kept) == nil && kept != ""
	})
	if kept != storage.AlertRejected {
		t.Fatalf("alert message id = %q, want %q", kept, storage.AlertRejected)
	}
	w.room.EndLive()
	waitFor(t, 10*time.Second, "the broadcast's end", func() bool {
		var ended sql.NullInt64
		return db.QueryRow(`SELECT ended_at FROM live_sessions`).Scan(&ended) == nil && ended.Valid
	})
	flush(t, w.outbox)
	if msgs := w.sender.all(); len(msgs) != 0 {
		t.Errorf("sent %+v to a chat that refused the alert, want nothing", msgs)
	}
}

// A message that keeps failing is given up on once it is too old, so one
// broken chat does not hold its queue forever.
func TestOutboxGivesUpOnStaleMessages(t *testing.T) {
	sender := &fakeSender{}
	sender.failNext(1000, fmt.Errorf("502 Bad Gateway"))
	outbox := newTestOutbox(t, sender)
	outbox.SetRetry(time.Millisecond, 5*time.Millisecond, 100*time.Millisecond)
	outbox.Send(group, bot.Message{Text: "stale"}, nil)
	flush(t, outbox)
	if st := outbox.Stats()[storage.Telegram]; st.Failed != 1 {
		t.Errorf("stats = %+v, want the stale message given up", st)
	}
	if n := sender.attempts(); n < 5 {
		t.Errorf("%d attempts in 100 ms of retrying, want it retried", n)
	}
	sender.failNext(0, nil)
	outbox.Send(group, bot.Message{Text: "fresh"}, nil)
	flush(t, outbox)
	if msgs := sender.all(); len(msgs) != 1 || msgs[0].msg.Text != "fresh" {
		t.Errorf("delivered %+v, want the fresh message", msgs)
	}
}

// BenchmarkCommandReply measures a command's trip through the router with
// its database work, without a platform: /list for a chat with a room, and
// /record of a room the chat already records (a Bilibili lookup on
// loopback plus the database).
func BenchmarkCommandReply(b *testing.B) {
	w := newWorld(b)
	w.router.Handle(context.Background(), admin("/record 5440"))
	for _, cmd := range []string{"/list", "/record 5440"} {
		b.Run(cmd[1:], func(b *testing.B) {
			for b.Loop() {
				if r := w.router.Handle(context.Background(), admin(cmd)); r.Private {
					b.Fatal(r.Text)
				}
			}
		})
	}
}

// Two /record for the same room arriving together (each platform update
// runs on its own goroutine) take one task reference, so a /stop ends the
// task.
func TestConcurrentRecordThenStopLeavesNoTask(t *testing.T) {
	w := newWorld(t)
	for i := range 20 {
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() { w.ask(t, admin("/record 5440")) })
		}
		wg.Go(func() { w.ask(t, admin("/watch 5440")) })
		wg.Wait()
		if r := w.ask(t, admin("/stop 5440")); !strings.Contains(r.Text, "Stopped following") {
			t.Fatalf("round %d: /stop = %q", i, r.Text)
		}
		if _, ok := w.mgr.Get(5440); ok {
			t.Fatalf("round %d: the task still runs after the only chat stopped", i)
		}
	}
}

// A group that becomes a supergroup, where both ids followed a room (a
// command reached the supergroup first), keeps one subscription and one
// task reference: its /stop ends the task.
func TestMigratedChatKeepsOneReferencePerRoom(t *testing.T) {
	w := newWorld(t)
	old := bot.Request{Chat: bot.Chat{Platform: storage.Telegram, ID: "-123", Private: true}, Text: "/record 5440"}
	super := bot.Request{Chat: bot.Chat{Platform: storage.Telegram, ID: "-100123", Private: true}, Text: "/watch 5440"}
	w.ask(t, old)
	w.ask(t, super)
	if err := w.router.MigrateChat(context.Background(), storage.Telegram, "-123", "-100123"); err != nil {
		t.Fatal(err)
	}
	super.Text = "/stop 5440"
	if r := w.ask(t, super); !strings.Contains(r.Text, "Stopped following") {
		t.Fatalf("/stop after the migration = %q", r.Text)
	}
	if _, ok := w.mgr.Get(5440); ok {
		t.Error("the task still runs after the merged chat stopped its only subscription")
	}
}

// Resume takes one task reference for each stored subscription, so the
// chats' /stop afterwards release exactly what it took.
func TestResumeTakesOneReferencePerSubscription(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	watcher := bot.Chat{Platform: storage.Telegram, ID: "-1002", Private: true}
	for _, sub := range []struct {
		chat bot.Chat
		mode storage.Mode
	}{{group, storage.Record}, {watcher, storage.Watch}} {
		c, err := w.store.EnsureChat(ctx, storage.Chat{Platform: sub.chat.Platform, PlatformID: sub.chat.ID})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.store.Subscribe(ctx, c.ID, storage.Room{RoomID: 5440, ShortID: 1, Anchor: "主播"}, sub.mode, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := w.router.Resume(ctx); n != 1 || err != nil {
		t.Fatalf("Resume = %d, %v; want 1 room", n, err)
	}
	if tasks := w.mgr.List(); len(tasks) != 1 || !tasks[0].Record {
		t.Fatalf("tasks after Resume = %+v, want room 5440 recorded", tasks)
	}
	w.ask(t, admin("/stop 5440"))
	if tasks := w.mgr.List(); len(tasks) != 1 || tasks[0].Record {
		t.Errorf("tasks after the recording chat stopped = %+v, want room 5440 watched only", tasks)
	}
	w.ask(t, bot.Request{Chat: watcher, Text: "/stop 5440"})
	if _, ok := w.mgr.Get(5440); ok {
		t.Error("the task still runs after every chat stopped")
	}
}
