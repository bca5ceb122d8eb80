package bot_test

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"roomrec/bot"
	"roomrec/recording"
	"roomrec/storage"
)

func newNotifierWorld(t *testing.T) (*storage.Store, *fakeSender, *bot.Outbox, *bot.Notifier) {
	t.Helper()
	dir := t.TempDir()
	store, err := storage.Open(context.Background(), filepath.Join(dir, "db"), storage.Options{RecordingsDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	sender := &fakeSender{}
	outbox := bot.NewOutbox(nil)
	t.Cleanup(outbox.Close)
	outbox.AddSender(storage.Telegram, sender, bot.Limits{PerChat: rate.Inf, Global: rate.Inf})
	return store, sender, outbox, bot.NewNotifier(store, outbox, nil)
}

func TestNotifierNoticesGoToFollowers(t *testing.T) {
	store, sender, outbox, n := newNotifierWorld(t)
	ctx := context.Background()
	follower, _ := store.EnsureChat(ctx, storage.Chat{Platform: storage.Telegram, PlatformID: "1"})
	store.Subscribe(ctx, follower.ID, storage.Room{RoomID: 5440}, storage.Watch, "")
	store.EnsureChat(ctx, storage.Chat{Platform: storage.Telegram, PlatformID: "2"}) // follows nothing

	room := recording.Room{RoomID: 5440, Anchor: "主播"}
	n.Handle(recording.TitleChanged{Room: room, Old: "a", New: "新标题"})
	n.Handle(recording.TaskError{Room: room, Kind: recording.ErrorDisk, Err: errors.New("no space"), Recoverable: true})
	n.Handle(recording.TaskError{Room: room, Kind: recording.ErrorNetwork, Recoverable: true,
		Err: &url.Error{Op: "Get", URL: "https://cn-gotcha01.bilivideo.com/live-bvc/1.flv?uid=12345&sign=secret", Err: errors.New("dial tcp: connection refused")}})
	n.Handle(recording.TaskError{Room: room, Kind: recording.ErrorNoStream, Err: errors.New("no FLV"), Recoverable: true})
	n.Handle(recording.TaskError{Room: room, Kind: recording.ErrorInternal, Err: errors.New("bug"), Recoverable: true})
	n.Pruned(storage.Pruned{Chat: follower, Recordings: []storage.Recording{{ID: 9, Title: "旧录像"}}, Freed: 3 << 30})
	flush(t, outbox)

	msgs := sender.all()
	want := []string{"新标题", "disk I record to is full", "主播 is live, but I can't get the stream", "only in formats this roomrec is set not to record", "removed 1 recording(s)"}
	if len(msgs) != len(want) {
		t.Fatalf("%d messages, want %d (%q): %+v", len(msgs), len(want), want, msgs)
	}
	for i, w := range want {
		if msgs[i].chat != "1" || !strings.Contains(msgs[i].msg.Text, w) {
			t.Errorf("message %d = %+v, want it to the follower, containing %q", i, msgs[i], w)
		}
	}
	if !strings.Contains(msgs[2].msg.Text, "connection refused") || strings.Contains(msgs[2].msg.Text, "sign=") || strings.Contains(msgs[2].msg.Text, "bilivideo") {
		t.Errorf("network notice %q should say what failed without the signed stream URL", msgs[2].msg.Text)
	}
	if !strings.Contains(msgs[4].msg.Text, "#9 旧录像") || !strings.Contains(msgs[4].msg.Text, "3.0 GiB freed") {
		t.Errorf("retention notice = %q", msgs[4].msg.Text)
	}
	subs, _ := store.ChatSubscriptions(ctx, follower.ID)
	if subs[0].Title != "新标题" {
		t.Errorf("stored title %q, want the new one for /list", subs[0].Title)
	}
}

// The disk is the server's: a chat recording twenty rooms hears once that
// it is full, and again only after it recovered and filled up anew.
func TestSharedConditionsAreToldOncePerChat(t *testing.T) {
	store, sender, outbox, n := newNotifierWorld(t)
	ctx := context.Background()
	chat, _ := store.EnsureChat(ctx, storage.Chat{Platform: storage.Telegram, PlatformID: "1"})
	var rooms []recording.Room
	for id := int64(1); id <= 20; id++ {
		store.Subscribe(ctx, chat.ID, storage.Room{RoomID: id}, storage.Record, "")
		rooms = append(rooms, recording.Room{RoomID: id})
	}
	full := func() {
		for _, r := range rooms {
			n.Handle(recording.TaskError{Room: r, Kind: recording.ErrorDisk, Err: errors.New("no space"), Recoverable: true})
		}
		flush(t, outbox)
	}
	full()
	if got := len(sender.all()); got != 1 {
		t.Fatalf("%d notices for one full disk across 20 rooms, want 1", got)
	}
	// Space returns in 19 rooms: the condition is still on in one, so
	// their next failures tell nothing new.
	for _, r := range rooms[1:] {
		n.Handle(recording.TaskRecovered{Room: r, Kind: recording.ErrorDisk})
	}
	full()
	if got := len(sender.all()); got != 1 {
		t.Fatalf("%d notices while the disk never fully recovered, want still 1", got)
	}
	for _, r := range rooms {
		n.Handle(recording.TaskRecovered{Room: r, Kind: recording.ErrorDisk})
	}
	full()
	if got := len(sender.all()); got != 2 {
		t.Errorf("%d notices after the disk recovered and filled again, want 2", got)
	}
}

// Risk control that clears up quickly is routine: only one that lasts is
// told, once.
func TestRiskControlIsToldOnlyWhenItPersists(t *testing.T) {
	store, sender, outbox, n := newNotifierWorld(t)
	n.SetRiskNoticeAfter(200 * time.Millisecond)
	ctx := context.Background()
	chat, _ := store.EnsureChat(ctx, storage.Chat{Platform: storage.Telegram, PlatformID: "1"})
	store.Subscribe(ctx, chat.ID, storage.Room{RoomID: 1}, storage.Record, "")
	store.Subscribe(ctx, chat.ID, storage.Room{RoomID: 2}, storage.Record, "")
	risk := func(room int64) recording.TaskError {
		return recording.TaskError{Room: recording.Room{RoomID: room}, Kind: recording.ErrorRiskControl, Err: errors.New("-352"), Recoverable: true}
	}

	n.Handle(risk(1))
	time.Sleep(50 * time.Millisecond)
	n.Handle(recording.TaskRecovered{Room: recording.Room{RoomID: 1}, Kind: recording.ErrorRiskControl})
	time.Sleep(400 * time.Millisecond)
	flush(t, outbox)
	if msgs := sender.all(); len(msgs) != 0 {
		t.Fatalf("a brief -352 was told: %+v", msgs)
	}

	n.Handle(risk(1))
	n.Handle(risk(2))
	time.Sleep(400 * time.Millisecond)
	flush(t, outbox)
	msgs := sender.all()
	if len(msgs) != 1 || !strings.Contains(msgs[0].msg.Text, "risk control") {
		t.Errorf("lasting risk control in two rooms gave %+v, want one notice", msgs)
	}
}

// A notice waiting for risk control to last does not go out after Close:
// the store and outbox behind it close next.
func TestClosedNotifierTellsNothingLater(t *testing.T) {
	store, sender, outbox, n := newNotifierWorld(t)
	n.SetRiskNoticeAfter(100 * time.Millisecond)
	ctx := context.Background()
	chat, _ := store.EnsureChat(ctx, storage.Chat{Platform: storage.Telegram, PlatformID: "1"})
	store.Subscribe(ctx, chat.ID, storage.Room{RoomID: 1}, storage.Record, "")
	risk := recording.TaskError{Room: recording.Room{RoomID: 1}, Kind: recording.ErrorRiskControl, Err: errors.New("-352"), Recoverable: true}

	n.Handle(risk)
	n.Close()
	n.Handle(recording.TaskError{Room: recording.Room{RoomID: 1}, Kind: recording.ErrorRoomGone, Err: errors.New("gone")})
	time.Sleep(300 * time.Millisecond)
	flush(t, outbox)
	if msgs := sender.all(); len(msgs) != 0 {
		t.Errorf("the closed notifier sent %+v", msgs)
	}
}

// A file the recorder could not finish (its sync or rename failed) is not
// indexed as finished: it stays writing, naming no file as complete, until
// the crash check of the next start finishes it.
func TestUnfinishedFileStaysWriting(t *testing.T) {
	store, _, _, n := newNotifierWorld(t)
	ctx := context.Background()
	chat, _ := store.EnsureChat(ctx, storage.Chat{Platform: storage.Telegram, PlatformID: "1"})
	store.Subscribe(ctx, chat.ID, storage.Room{RoomID: 5440}, storage.Record, "")
	room := recording.Room{RoomID: 5440}
	start := time.Now()
	n.Handle(recording.FileOpened{Room: room, LiveStart: start, Path: "5440/a.flv", Part: 1, Opened: start})
	n.Handle(recording.FileClosed{Room: room, LiveStart: start, Path: "5440/a.flv.part", Part: 1, Size: 100,
		Opened: start, Closed: time.Now(), Interrupted: true, Err: errors.New("rename: file exists")})
	rec, err := store.RecordingByPath(ctx, "5440/a.flv")
	if err != nil || rec.Status != storage.Writing {
		t.Errorf("recording = %+v, %v; want it still writing", rec, err)
	}
	// A file that was finished is indexed as usual.
	n.Handle(recording.FileOpened{Room: room, LiveStart: start, Path: "5440/b.flv", Part: 2, Opened: start})
	n.Handle(recording.FileClosed{Room: room, LiveStart: start, Path: "5440/b.flv", Part: 2, Size: 100, Opened: start, Closed: time.Now()})
	if rec, _ := store.RecordingByPath(ctx, "5440/b.flv"); rec.Status != storage.Complete {
		t.Errorf("finished recording is %s, want complete", rec.Status)
	}
}
