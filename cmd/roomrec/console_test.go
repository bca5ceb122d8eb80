package main

import (
	"context"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"roomrec/bilibili/bilibilitest"
	"roomrec/storage"
)

// startConsole runs `roomrec console` on the simulator with its data in
// dir, and returns its output and where to type its input. It is closed
// when the test ends, if not before.
func startConsole(t *testing.T, sim *bilibilitest.Server, dir string) (*Main, *syncBuffer, *io.PipeWriter) {
	t.Helper()
	m, out, _ := testMain(t, map[string]string{"BILIBILI_API_URL": sim.URL(), "ROOMREC_LOG_LEVEL": "warn", "ROOMREC_DATA_DIR": dir})
	stdin, typed := io.Pipe()
	m.Stdin = stdin
	startMain(t, m, "console")
	return m, out, typed
}

func TestConsoleEndToEnd(t *testing.T) {
	sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 4})
	room := sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, ShortID: 1, Anchor: "主播", Title: "今晚打游戏"})
	// A first run: the data directory does not exist yet.
	dir := filepath.Join(t.TempDir(), "first-run", "data")
	m, out, typed := startConsole(t, sim, dir)
	say := func(line, want string) {
		t.Helper()
		before := len(out.String())
		io.WriteString(typed, line+"\n")
		waitFor(t, 5*time.Second, "reply to "+line, func() bool { return strings.Contains(out.String()[before:], want) })
	}
	say("/help", "/archive")
	say("/record 1", "Recording 主播 — 今晚打游戏 (room 5440)")
	say("/record nope", "not a room number")
	waitFor(t, 5*time.Second, "danmaku connection", func() bool { return sim.DanmakuConnections(5440) == 1 })
	room.GoLive()
	waitFor(t, 5*time.Second, "the alert", func() bool { return strings.Contains(out.String(), "主播 is live: 今晚打游戏") })
	time.Sleep(time.Second)
	room.EndLive()
	waitFor(t, 10*time.Second, "the end", func() bool { return strings.Contains(out.String(), "Ended after") })
	say("/archive", "1 recordings")
	say("/archive link 1", "http://127.0.0.1:")
	say("/status", "Watching 1 rooms")
	say("/archive keep 7d", "This chat now keeps recordings for 7 days")

	typed.Close() // Ctrl-D
	select {
	case <-m.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("console did not end at the end of input")
	}
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "is live:"); n != 1 {
		t.Errorf("%d alerts printed, want 1:\n%s", n, out)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "recordings", "5440", "*.flv"))
	if len(files) != 1 {
		t.Fatalf("%d files, want 1", len(files))
	}

	// A week and more later (the recording is aged in the database), the
	// next start prunes it by the chat's own policy and says so.
	db, err := sql.Open("sqlite3", filepath.Join(dir, "roomrec.db"))
	if err != nil {
		t.Fatal(err)
	}
	week := (8 * 24 * time.Hour).Milliseconds()
	for _, q := range []string{`UPDATE recordings SET started_at = started_at - ?`, `UPDATE archive SET started_at = started_at - ?`} {
		if _, err := db.Exec(q, week); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	m2, out2, typed2 := startConsole(t, sim, dir)
	waitFor(t, 5*time.Second, "the retention notice", func() bool {
		return strings.Contains(out2.String(), "Retention removed 1 recording(s) from this chat's archive")
	})
	io.WriteString(typed2, "/archive keep\n/archive\n")
	waitFor(t, 5*time.Second, "the kept policy and the empty archive", func() bool {
		o := out2.String()
		return strings.Contains(o, "This chat keeps recordings for 7 days") && strings.Contains(o, "No recordings in this chat's archive")
	})
	typed2.Close()
	<-m2.Done()
	if err := m2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(files[0]); !os.IsNotExist(err) {
		t.Errorf("the pruned file is still on disk: %v", err)
	}
}

// A room stored before the anchor's uid was kept (migration 0006) is
// checked on its own once; the uid that check learns is saved, so the
// next start asks about the room in bulk.
func TestLearnedAnchorUIDIsSaved(t *testing.T) {
	sim := bilibilitest.Start(t, bilibilitest.Config{})
	sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, UID: 9617619, Anchor: "主播"})
	dir := t.TempDir()
	ctx := context.Background()
	store, err := storage.Open(ctx, filepath.Join(dir, "roomrec.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	chat, _ := store.EnsureChat(ctx, storage.Chat{Platform: storage.Console, PlatformID: consoleChat.ID})
	if _, err := store.Subscribe(ctx, chat.ID, storage.Room{RoomID: 5440, Anchor: "主播"}, storage.Record, "admin"); err != nil {
		t.Fatal(err)
	}
	store.Close()

	uid := func() int64 {
		db, err := sql.Open("sqlite3", filepath.Join(dir, "roomrec.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var uid int64
		db.QueryRow(`SELECT uid FROM rooms WHERE room_id = 5440`).Scan(&uid)
		return uid
	}
	m, _, typed := startConsole(t, sim, dir)
	waitFor(t, 10*time.Second, "the anchor's uid in the database", func() bool { return uid() == 9617619 })
	if n := sim.Requests(bilibilitest.PathRoomInfo); n != 1 {
		t.Errorf("%d room info requests before the uid was known, want 1", n)
	}
	typed.Close()
	<-m.Done()
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// The next start checks the room in bulk, and not alone.
	bulk := sim.Requests(bilibilitest.PathRoomsOfAnchors)
	m, _, typed = startConsole(t, sim, dir)
	waitFor(t, 10*time.Second, "a bulk check", func() bool { return sim.Requests(bilibilitest.PathRoomsOfAnchors) > bulk })
	if n := sim.Requests(bilibilitest.PathRoomInfo); n != 1 {
		t.Errorf("%d room info requests after a restart, want still 1", n)
	}
	typed.Close()
	<-m.Done()
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
