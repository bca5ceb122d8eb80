package bot_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"roomrec/bot"
	"roomrec/recording"
	"roomrec/storage"
)

func TestNotifierNoticesGoToFollowers(t *testing.T) {
	dir := t.TempDir()
	store, err := storage.Open(context.Background(), filepath.Join(dir, "db"), storage.Options{RecordingsDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sender := &fakeSender{}
	outbox := bot.NewOutbox(nil)
	defer outbox.Close()
	outbox.AddSender(storage.Telegram, sender, bot.Limits{PerChat: rate.Inf, Global: rate.Inf})
	n := bot.NewNotifier(store, outbox, nil)
	ctx := context.Background()
	follower, _ := store.EnsureChat(ctx, storage.Chat{Platform: storage.Telegram, PlatformID: "1"})
	store.Subscribe(ctx, follower.ID, storage.Room{RoomID: 5440}, storage.Watch, "")
	store.EnsureChat(ctx, storage.Chat{Platform: storage.Telegram, PlatformID: "2"}) // follows nothing

	room := recording.Room{RoomID: 5440, Anchor: "主播"}
	n.Handle(recording.TitleChanged{Room: room, Old: "a", New: "新标题"})
	n.Handle(recording.TaskError{Room: room, Kind: recording.ErrorDisk, Err: errors.New("no space"), Recoverable: true})
	n.Handle(recording.TaskError{Room: room, Kind: recording.ErrorNetwork, Err: errors.New("reset"), Recoverable: true})
	n.Handle(recording.TaskError{Room: room, Kind: recording.ErrorNoStream, Err: errors.New("no FLV"), Recoverable: true})
	n.Pruned(storage.Pruned{Chat: follower, Recordings: []storage.Recording{{ID: 9, Title: "旧录像"}}, Freed: 3 << 30})
	flush, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	outbox.Flush(flush)

	msgs := sender.all()
	if len(msgs) != 4 {
		t.Fatalf("%d messages, want a title notice, a disk warning, an HLS-only warning and a retention notice (network errors are retried silently): %+v", len(msgs), msgs)
	}
	if msgs[0].chat != "1" || !strings.Contains(msgs[0].msg.Text, "新标题") {
		t.Errorf("title notice = %+v", msgs[0])
	}
	if !strings.Contains(msgs[1].msg.Text, "disk is full") {
		t.Errorf("disk warning = %+v", msgs[1])
	}
	if !strings.Contains(msgs[2].msg.Text, "主播 is live, but Bilibili offers the stream only as HLS") {
		t.Errorf("HLS-only warning = %q", msgs[2].msg.Text)
	}
	if !strings.Contains(msgs[3].msg.Text, "removed 1 recording(s)") || !strings.Contains(msgs[3].msg.Text, "#9 旧录像") || !strings.Contains(msgs[3].msg.Text, "3.0 GiB freed") {
		t.Errorf("retention notice = %q", msgs[3].msg.Text)
	}
	subs, _ := store.ChatSubscriptions(ctx, follower.ID)
	if subs[0].Title != "新标题" {
		t.Errorf("stored title %q, want the new one for /list", subs[0].Title)
	}
}
