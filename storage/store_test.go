package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"roomrec/migrations"
)

// testClock is a clock tests move by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// openTest opens a store on a fresh SQLite file in a temp dir.
func openTest(t testing.TB) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	clock := &testClock{now: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
	s, err := Open(context.Background(), filepath.Join(dir, "roomrec.db"), Options{RecordingsDir: filepath.Join(dir, "recordings"), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func userVersion(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMigrationsFromEmptyAndAgain(t *testing.T) {
	s, dir := openTest(t)
	s.Close()
	path := filepath.Join(dir, "roomrec.db")
	names, _ := fs.Glob(migrations.FS, "*.sql")
	if v := userVersion(t, path); v != len(names) {
		t.Fatalf("user_version = %d, want %d", v, len(names))
	}
	// Opening again applies nothing and keeps the data.
	s2, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
}

func TestMigrationsApplyInOrderFromEachVersion(t *testing.T) {
	base, _ := migrations.FS.ReadFile("0001_init.sql")
	steps := fstest.MapFS{
		"0001_init.sql":  {Data: base},
		"0002_extra.sql": {Data: []byte("ALTER TABLE rooms ADD COLUMN note TEXT NOT NULL DEFAULT '';")},
		"0003_more.sql":  {Data: []byte("CREATE TABLE later (x INTEGER) STRICT;")},
	}
	for from := 0; from <= 3; from++ {
		t.Run(fmt.Sprintf("from %d", from), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "db")
			if from > 0 {
				partial := fstest.MapFS{}
				for _, name := range []string{"0001_init.sql", "0002_extra.sql", "0003_more.sql"}[:from] {
					partial[name] = steps[name]
				}
				s, err := Open(context.Background(), path, Options{Migrations: partial})
				if err != nil {
					t.Fatal(err)
				}
				s.Close()
			}
			s, err := Open(context.Background(), path, Options{Migrations: steps})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if v := userVersion(t, path); v != 3 {
				t.Errorf("user_version = %d, want 3", v)
			}
			if _, err := s.db.Exec("INSERT INTO later (x) VALUES (1)"); err != nil {
				t.Errorf("last migration not applied: %v", err)
			}
		})
	}
}

// A database made by the first release keeps its chats and subscriptions
// when the current binary opens it, and gains what later migrations add.
func TestUpgradeFromFirstRelease(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "roomrec.db")
	base, _ := migrations.FS.ReadFile("0001_init.sql")
	old, err := Open(ctx, path, Options{Migrations: fstest.MapFS{"0001_init.sql": {Data: base}}})
	if err != nil {
		t.Fatal(err)
	}
	chat, _ := old.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "-100"})
	// The subscription as the first release wrote it: today's Subscribe
	// writes columns that schema lacks.
	if _, err := old.db.Exec(`INSERT INTO rooms (room_id, anchor, updated_at) VALUES (5440, '主播', 1);
		INSERT INTO subscriptions (chat_id, room_id, mode, added_by, created_at, updated_at) VALUES (?, 5440, 'record', 'admin', 1, 1)`, chat.ID); err != nil {
		t.Fatal(err)
	}
	old.Close()

	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("current binary on a first-release database: %v", err)
	}
	defer s.Close()
	if subs, _ := s.ChatSubscriptions(ctx, chat.ID); len(subs) != 1 || subs[0].Anchor != "主播" {
		t.Errorf("subscriptions after the upgrade = %+v, want the one made before", subs)
	}
	if err := s.SetChatRetention(ctx, chat.ID, Retention{MaxAge: 7 * day}); err != nil {
		t.Errorf("retention on an upgraded chat: %v", err)
	}
}

func TestOpenCreatesTheDataDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "not", "yet", "roomrec.db")
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatalf("Open in a directory that does not exist yet: %v", err)
	}
	s.Close()
}

func TestNewerDatabaseRefused(t *testing.T) {
	_, dir := openTest(t)
	path := filepath.Join(dir, "roomrec.db")
	db, _ := sql.Open("sqlite3", path)
	if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err := Open(context.Background(), path, Options{})
	if err == nil || !strings.Contains(err.Error(), "newer roomrec") {
		t.Errorf("Open of a newer database = %v, want a clear refusal", err)
	}
}

func TestFailedMigrationLeavesDatabaseAsItWas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	base, _ := migrations.FS.ReadFile("0001_init.sql")
	good := fstest.MapFS{"0001_init.sql": {Data: base}}
	s, err := Open(context.Background(), path, Options{Migrations: good})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	broken := fstest.MapFS{
		"0001_init.sql":   {Data: base},
		"0002_broken.sql": {Data: []byte("CREATE TABLE half (x INTEGER); INSERT INTO nowhere VALUES (1);")},
	}
	if _, err := Open(context.Background(), path, Options{Migrations: broken}); err == nil || !strings.Contains(err.Error(), "0002_broken.sql") {
		t.Fatalf("Open with a broken migration = %v, want an error naming it", err)
	}
	if v := userVersion(t, path); v != 1 {
		t.Errorf("user_version = %d after a failed migration, want 1", v)
	}
	db, _ := sql.Open("sqlite3", path)
	defer db.Close()
	var n int
	db.QueryRow("SELECT count(*) FROM sqlite_master WHERE name = 'half'").Scan(&n)
	if n != 0 {
		t.Error("the failed migration's first statement was kept")
	}
}

func TestSubscriptions(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	chat, err := s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "-100", Title: "粉丝群"})
	if err != nil {
		t.Fatal(err)
	}
	room := Room{RoomID: 5440, ShortID: 1, Anchor: "主播", Title: "标题"}
	created, err := s.Subscribe(ctx, chat.ID, room, Watch, "alice")
	if err != nil || !created {
		t.Fatalf("Subscribe = %v, %v", created, err)
	}
	created, err = s.Subscribe(ctx, chat.ID, Room{RoomID: 5440}, Record, "bob")
	if err != nil || created {
		t.Fatalf("second Subscribe = %v, %v, want an update", created, err)
	}
	subs, err := s.ChatSubscriptions(ctx, chat.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != 1 || subs[0].Mode != Record || subs[0].Anchor != "主播" || subs[0].Title != "标题" || subs[0].AddedBy != "alice" {
		t.Errorf("subscriptions = %+v, want one record subscription keeping the room's name", subs)
	}
	if _, err := s.Subscribe(ctx, chat.ID, room, "loud", ""); err == nil {
		t.Error("Subscribe accepted an unknown mode")
	}
	other, _ := s.EnsureChat(ctx, Chat{Platform: Discord, PlatformID: "42"})
	s.Subscribe(ctx, other.ID, room, Watch, "")
	subscribers, _ := s.RoomSubscribers(ctx, 5440)
	if len(subscribers) != 2 || subscribers[0].Mode != Record || subscribers[1].Mode != Watch {
		t.Errorf("subscribers = %+v", subscribers)
	}
	if err := s.UpdateRoom(ctx, Room{RoomID: 5440, Title: "新标题", Cover: "c.jpg"}); err != nil {
		t.Fatal(err)
	}
	subs, _ = s.ChatSubscriptions(ctx, chat.ID)
	if subs[0].Title != "新标题" || subs[0].Cover != "c.jpg" || subs[0].Anchor != "主播" || subs[0].ShortID != 1 {
		t.Errorf("after UpdateRoom: %+v, want the new title and cover, the old anchor and short id", subs[0].Room)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping = %v", err)
	}
	wants, _ := s.SubscribedRooms(ctx)
	if len(wants) != 1 || !wants[0].Record {
		t.Errorf("SubscribedRooms = %+v, want room 5440 recorded", wants)
	}
	if _, err := s.Unsubscribe(ctx, chat.ID, 5440); err != nil {
		t.Fatal(err)
	}
	_, err = s.Unsubscribe(ctx, chat.ID, 5440)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "does not follow room 5440") {
		t.Errorf("second Unsubscribe = %v, want a plain not-found", err)
	}
	wants, _ = s.SubscribedRooms(ctx)
	if len(wants) != 1 || wants[0].Record {
		t.Errorf("SubscribedRooms = %+v, want room 5440 watched only", wants)
	}
}

func TestEnsureChatKeepsTitleWhenNoneIsGiven(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "-1", Title: "粉丝群"})
	s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "-1"})
	c, _ := s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "-1"})
	var title string
	s.db.QueryRow(`SELECT title FROM chats WHERE id = ?`, c.ID).Scan(&title)
	if title != "粉丝群" {
		t.Errorf("title = %q after calls without one, want the known 粉丝群", title)
	}
	s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "-1", Title: "新群名"})
	s.db.QueryRow(`SELECT title FROM chats WHERE id = ?`, c.ID).Scan(&title)
	if title != "新群名" {
		t.Errorf("title = %q after a rename, want 新群名", title)
	}
}

func TestMigrateChat(t *testing.T) {
	ctx := context.Background()
	t.Run("plain", func(t *testing.T) {
		s, _ := openTest(t)
		group, _ := s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "-123"})
		s.Subscribe(ctx, group.ID, Room{RoomID: 5440}, Record, "")
		if err := s.MigrateChat(ctx, Telegram, "-123", "-100123"); err != nil {
			t.Fatal(err)
		}
		super, _ := s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "-100123"})
		if super.ID != group.ID {
			t.Errorf("supergroup is chat %d, want the group's %d", super.ID, group.ID)
		}
		if subs, _ := s.ChatSubscriptions(ctx, super.ID); len(subs) != 1 {
			t.Errorf("supergroup has %d subscriptions, want 1", len(subs))
		}
	})
	t.Run("merge", func(t *testing.T) {
		s, _ := openTest(t)
		group, _ := s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "-123"})
		s.Subscribe(ctx, group.ID, Room{RoomID: 5440}, Record, "")
		rec, _ := s.CreateRecording(ctx, NewRecording{RoomID: 5440, Path: "5440/a.flv", Started: time.Now()})
		super, _ := s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "-100123"})
		s.Subscribe(ctx, super.ID, Room{RoomID: 1}, Watch, "")
		if err := s.MigrateChat(ctx, Telegram, "-123", "-100123"); err != nil {
			t.Fatal(err)
		}
		subs, _ := s.ChatSubscriptions(ctx, super.ID)
		if len(subs) != 2 {
			t.Errorf("merged chat has %d subscriptions, want 2", len(subs))
		}
		if _, err := s.ArchiveItem(ctx, super.ID, rec.ID); err != nil {
			t.Errorf("the group's recording did not follow: %v", err)
		}
		if _, err := s.ArchiveItem(ctx, group.ID, rec.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("old chat still has the recording: %v", err)
		}
	})
}

// An alert claimed by a run that stopped before delivering it (queued, or
// retrying through a platform outage) is claimed once more by the next run:
// late, not lost. One that was delivered never is.
func TestUndeliveredAlertIsClaimedAgainAfterRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "roomrec.db")
	clock := &testClock{now: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
	open := func() *Store {
		t.Helper()
		s, err := Open(ctx, path, Options{Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	delivered, _ := s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "1"})
	pending, _ := s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "2"})
	refused, _ := s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "3"})
	ls, _ := s.StartLiveSession(ctx, 5440, clock.Now(), "key", "标题")
	for _, c := range []Chat{delivered, pending, refused} {
		if ok, err := s.ClaimAlert(ctx, ls.ID, c.ID); !ok || err != nil {
			t.Fatalf("first claim = %v, %v", ok, err)
		}
	}
	s.SetAlertMessage(ctx, ls.ID, delivered.ID, "msg-1")
	s.SetAlertMessage(ctx, ls.ID, refused.ID, AlertRejected)
	clock.Add(time.Second)
	if ok, _ := s.ClaimAlert(ctx, ls.ID, pending.ID); ok {
		t.Error("a claim still being delivered by this run was claimed again")
	}
	s.Close()

	clock.Add(time.Minute)
	s = open()
	if ok, _ := s.ClaimAlert(ctx, ls.ID, delivered.ID); ok {
		t.Error("a delivered alert was claimed again after a restart")
	}
	if ok, _ := s.ClaimAlert(ctx, ls.ID, refused.ID); ok {
		t.Error("an alert the chat refused was claimed again after a restart")
	}
	if ok, err := s.ClaimAlert(ctx, ls.ID, pending.ID); !ok || err != nil {
		t.Errorf("undelivered alert after a restart = %v, %v; want it claimed again", ok, err)
	}
	clock.Add(time.Second)
	if ok, _ := s.ClaimAlert(ctx, ls.ID, pending.ID); ok {
		t.Error("the re-claimed alert was claimed a third time in the same run")
	}
	s.Close()
}

func TestAlertOncePerBroadcastAcrossRestarts(t *testing.T) {
	s, dir := openTest(t)
	ctx := context.Background()
	chat, _ := s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "1"})
	start := time.Unix(1732400000, 0)
	ls, err := s.StartLiveSession(ctx, 5440, start, "key", "标题")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := s.StartLiveSession(ctx, 5440, start, "", "")
	if again.ID != ls.ID || again.LiveKey != "key" || again.Title != "标题" {
		t.Errorf("second StartLiveSession = %+v, want the same session %+v", again, ls)
	}
	if ok, err := s.ClaimAlert(ctx, ls.ID, chat.ID); !ok || err != nil {
		t.Fatalf("first claim = %v, %v", ok, err)
	}
	if ok, _ := s.ClaimAlert(ctx, ls.ID, chat.ID); ok {
		t.Error("second claim succeeded")
	}
	if err := s.SetAlertMessage(ctx, ls.ID, chat.ID, "msg-77"); err != nil {
		t.Fatal(err)
	}
	// A restart: a new Store on the same file.
	s.Close()
	s2, err := Open(ctx, filepath.Join(dir, "roomrec.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	ls2, _ := s2.StartLiveSession(ctx, 5440, start, "", "")
	if ok, _ := s2.ClaimAlert(ctx, ls2.ID, chat.ID); ok {
		t.Error("claim after a restart succeeded; the chat would be alerted twice")
	}
	alerts, err := s2.EndLiveSession(ctx, 5440, start, start.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 1 || alerts[0].MessageID != "msg-77" || alerts[0].PlatformID != "1" {
		t.Errorf("alerts = %+v, want the one message to edit", alerts)
	}
	if _, err := s2.EndLiveSession(ctx, 5440, start.Add(time.Minute), time.Now()); !errors.Is(err, ErrNotFound) {
		t.Errorf("ending an unknown broadcast = %v, want ErrNotFound", err)
	}
	// A new broadcast is a new claim.
	next, _ := s2.StartLiveSession(ctx, 5440, start.Add(24*time.Hour), "", "")
	if ok, _ := s2.ClaimAlert(ctx, next.ID, chat.ID); !ok {
		t.Error("the next broadcast could not be claimed")
	}
}

// writeFile creates a file under the store's recordings directory.
func writeFile(t *testing.T, dir, rel string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, "recordings", filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestArchiveSharing(t *testing.T) {
	s, dir := openTest(t)
	ctx := context.Background()
	a, _ := s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "a"})
	b, _ := s.EnsureChat(ctx, Chat{Platform: Discord, PlatformID: "b"})
	watcher, _ := s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "w"})
	s.Subscribe(ctx, a.ID, Room{RoomID: 5440}, Record, "")
	s.Subscribe(ctx, b.ID, Room{RoomID: 5440}, Record, "")
	s.Subscribe(ctx, watcher.ID, Room{RoomID: 5440}, Watch, "")
	rec, err := s.CreateRecording(ctx, NewRecording{RoomID: 5440, Path: "5440/x.flv", Title: "t", Started: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	video := writeFile(t, dir, "5440/x.flv", []byte("FLV"))
	danmaku := writeFile(t, dir, "5440/x.xml", []byte("<i/>"))
	cover := writeFile(t, dir, "5440/x.jpg", []byte("jpg"))
	if err := s.CompleteRecording(ctx, "5440/x.flv", RecordingEnd{Size: 3, Duration: time.Minute, Ended: time.Now(), DanmakuPath: "5440/x.xml"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateRecording(ctx, NewRecording{RoomID: 5440, Path: "5440/x.flv", Started: time.Now()}); !errors.Is(err, ErrConflict) {
		t.Errorf("indexing the same path twice = %v, want ErrConflict", err)
	}
	if err := s.CompleteRecording(ctx, "5440/nope.flv", RecordingEnd{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("completing an unknown path = %v, want ErrNotFound", err)
	}
	if _, err := s.ArchiveItem(ctx, watcher.ID, rec.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("a watch-only chat got the recording: %v", err)
	}
	removed, err := s.DeleteFromArchive(ctx, a.ID, rec.ID)
	if err != nil || removed {
		t.Fatalf("first delete = %v, %v, want the file kept for the other chat", removed, err)
	}
	if _, err := os.Stat(video); err != nil {
		t.Fatalf("file gone while chat b keeps it: %v", err)
	}
	if _, err := s.DeleteFromArchive(ctx, a.ID, rec.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting twice = %v, want not found", err)
	}
	if got, err := s.ArchiveItem(ctx, b.ID, rec.ID); err != nil || got.Status != Complete || got.Duration != time.Minute {
		t.Errorf("chat b's item = %+v, %v", got, err)
	}
	removed, err = s.DeleteFromArchive(ctx, b.ID, rec.ID)
	if err != nil || !removed {
		t.Fatalf("last delete = %v, %v, want the files removed", removed, err)
	}
	for _, p := range []string{video, danmaku, cover} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still on disk", filepath.Base(p))
		}
	}
	got, err := s.RecordingByPath(ctx, "5440/x.flv")
	if err != nil || got.Status != Deleted {
		t.Errorf("recording after the last delete = %+v, %v, want it kept as deleted", got, err)
	}
}

func TestDeletedWhileWritingGoesWhenFinished(t *testing.T) {
	s, dir := openTest(t)
	ctx := context.Background()
	chat, _ := s.EnsureChat(ctx, Chat{Platform: Console, PlatformID: "me"})
	s.Subscribe(ctx, chat.ID, Room{RoomID: 5440}, Record, "")
	rec, _ := s.CreateRecording(ctx, NewRecording{RoomID: 5440, Path: "5440/live.flv", Started: time.Now()})
	video := writeFile(t, dir, "5440/live.flv", []byte("FLV"))
	removed, err := s.DeleteFromArchive(ctx, chat.ID, rec.ID)
	if err != nil || removed {
		t.Fatalf("delete while writing = %v, %v, want the file kept until it is finished", removed, err)
	}
	if _, err := os.Stat(video); err != nil {
		t.Fatal("a file being written was removed")
	}
	if err := s.CompleteRecording(ctx, "5440/live.flv", RecordingEnd{Size: 3, Ended: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(video); !errors.Is(err, os.ErrNotExist) {
		t.Error("the finished file nobody keeps is still on disk")
	}
	if got, _ := s.RecordingByPath(ctx, "5440/live.flv"); got.Status != Deleted {
		t.Errorf("status %q, want deleted", got.Status)
	}
}

func TestArchiveListing(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	chat, _ := s.EnsureChat(ctx, Chat{Platform: Console, PlatformID: "me"})
	other, _ := s.EnsureChat(ctx, Chat{Platform: Console, PlatformID: "them"})
	s.Subscribe(ctx, chat.ID, Room{RoomID: 1}, Record, "")
	s.Subscribe(ctx, chat.ID, Room{RoomID: 2}, Record, "")
	s.Subscribe(ctx, other.ID, Room{RoomID: 3}, Record, "")
	base := time.Unix(1732400000, 0)
	for i := range 25 {
		room := int64(1 + i%2)
		path := fmt.Sprintf("%d/%02d.flv", room, i)
		s.CreateRecording(ctx, NewRecording{RoomID: room, Path: path, Started: base.Add(time.Duration(i) * time.Minute)})
		s.CompleteRecording(ctx, path, RecordingEnd{Size: 100, Duration: time.Minute, Ended: base})
	}
	theirs, _ := s.CreateRecording(ctx, NewRecording{RoomID: 3, Path: "3/x.flv", Started: base})

	page, err := s.Archive(ctx, chat.ID, ArchiveQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if page.Total != 25 || page.TotalBytes != 2500 || page.TotalDuration != 25*time.Minute || len(page.Items) != 10 {
		t.Fatalf("page = %d items, totals %d/%d/%s", len(page.Items), page.Total, page.TotalBytes, page.TotalDuration)
	}
	if page.Items[0].Path != "1/24.flv" || page.Items[9].Path != "2/15.flv" {
		t.Errorf("first page %s … %s, want newest first", page.Items[0].Path, page.Items[9].Path)
	}
	last, _ := s.Archive(ctx, chat.ID, ArchiveQuery{Limit: 10, Offset: 20})
	if len(last.Items) != 5 || last.Items[4].Path != "1/00.flv" {
		t.Errorf("last page has %d items", len(last.Items))
	}
	room2, _ := s.Archive(ctx, chat.ID, ArchiveQuery{RoomID: 2, Limit: 100})
	if room2.Total != 12 || len(room2.Items) != 12 {
		t.Errorf("room 2 has %d (%d listed), want 12", room2.Total, len(room2.Items))
	}
	if _, err := s.ArchiveItem(ctx, chat.ID, theirs.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("another chat's recording = %v, want not found", err)
	}
	if _, err := s.DeleteFromArchive(ctx, chat.ID, theirs.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting another chat's recording = %v, want not found", err)
	}
	if _, err := s.ArchiveItem(ctx, chat.ID, 999999); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown id = %v, want not found", err)
	}
}

func TestReconcileAfterCrash(t *testing.T) {
	s, dir := openTest(t)
	ctx := context.Background()
	chat, _ := s.EnsureChat(ctx, Chat{Platform: Console, PlatformID: "me"})
	s.Subscribe(ctx, chat.ID, Room{RoomID: 5440}, Record, "")
	sample, err := os.ReadFile(filepath.Join("..", "bilibili", "bilibilitest", "testdata", "sample_a.flv"))
	if err != nil {
		t.Fatal(err)
	}
	// A crash mid-write: the .part ends inside a tag; the danmaku file is
	// unterminated.
	s.CreateRecording(ctx, NewRecording{RoomID: 5440, Path: "5440/crash.flv", Started: time.Now()})
	part := writeFile(t, dir, "5440/crash.flv.part", sample[:len(sample)*2/3+7])
	writeFile(t, dir, "5440/crash.xml.part", []byte("<?xml version=\"1.0\"?>\n<i>\n<d p=\"1,1,25,1,1,0,1,0\" user=\"u\">hi</d>\n<d p=\"2,1,25"))
	// Another renamed before the crash but not marked complete; a third
	// whose file is gone; a file nobody indexed.
	s.CreateRecording(ctx, NewRecording{RoomID: 5440, Path: "5440/renamed.flv", Started: time.Now()})
	writeFile(t, dir, "5440/renamed.flv", sample)
	s.CreateRecording(ctx, NewRecording{RoomID: 5440, Path: "5440/gone.flv", Started: time.Now()})
	stranger := writeFile(t, dir, "5440/stranger.flv", sample[:1000])

	report, err := s.Reconcile(ctx, recoverFiles(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(report.Finalized) != 2 || len(report.Missing) != 1 || report.Missing[0] != "5440/gone.flv" {
		t.Fatalf("report = %+v", report)
	}
	if len(report.Unknown) != 1 || report.Unknown[0] != "5440/stranger.flv" {
		t.Errorf("unknown = %q, want the stranger reported", report.Unknown)
	}
	if _, err := os.Stat(stranger); err != nil {
		t.Error("an unknown file was touched")
	}
	if _, err := os.Stat(part); !errors.Is(err, os.ErrNotExist) {
		t.Error(".part still there")
	}
	final := filepath.Join(dir, "recordings", "5440", "crash.flv")
	info, err := os.Stat(final)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := s.RecordingByPath(ctx, "5440/crash.flv")
	if rec.Status != Interrupted || rec.Size != info.Size() || rec.Size >= int64(len(sample)*2/3+7) || rec.Duration < 2*time.Second {
		t.Errorf("recording = %+v (file %d bytes), want interrupted with the cut size and a duration", rec, info.Size())
	}
	if _, err := exec.LookPath("ffprobe"); err == nil {
		if out, err := exec.Command("ffprobe", "-v", "error", final).CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("ffprobe of the finalized file: %v %s", err, out)
		}
	}
	xml, err := os.ReadFile(filepath.Join(dir, "recordings", "5440", "crash.xml"))
	if err != nil || !strings.HasSuffix(string(xml), "</d>\n</i>\n") || rec.DanmakuPath != "5440/crash.xml" {
		t.Errorf("danmaku file = %q, %v (indexed as %q), want it closed after the last whole line", xml, err, rec.DanmakuPath)
	}
	if page, _ := s.Archive(ctx, chat.ID, ArchiveQuery{}); page.Total != 3 {
		t.Errorf("archive lists %d recordings, want all 3", page.Total)
	}
	// Reconciling again finds nothing to do.
	again, _ := s.Reconcile(ctx, recoverFiles(dir))
	if len(again.Finalized) != 0 || len(again.Missing) != 0 {
		t.Errorf("second reconcile = %+v", again)
	}
}

func TestConcurrentCommandsDoNotLock(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for g := range 50 {
		wg.Go(func() {
			chat, err := s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: fmt.Sprint(g)})
			if err != nil {
				errs <- err
				return
			}
			for i := range 10 {
				room := Room{RoomID: int64(1 + (g+i)%7)}
				if _, err := s.Subscribe(ctx, chat.ID, room, Record, ""); err != nil {
					errs <- err
				}
				path := fmt.Sprintf("%d/%d-%d.flv", room.RoomID, g, i)
				if _, err := s.CreateRecording(ctx, NewRecording{RoomID: room.RoomID, Path: path, Started: time.Now()}); err != nil {
					errs <- err
				}
				if err := s.CompleteRecording(ctx, path, RecordingEnd{Size: 1, Ended: time.Now()}); err != nil {
					errs <- err
				}
				if _, err := s.Archive(ctx, chat.ID, ArchiveQuery{}); err != nil {
					errs <- err
				}
				if _, err := s.Unsubscribe(ctx, chat.ID, room.RoomID); err != nil && !errors.Is(err, ErrNotFound) {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent command failed: %v", err)
	}
}

// The anchor's uid, learned when a chat subscribes, comes back at resume
// (the bulk room check asks by it); a later update that does not know it
// keeps it.
func TestRoomKeepsItsAnchorUID(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	chat, _ := s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "-100"})
	if _, err := s.Subscribe(ctx, chat.ID, Room{RoomID: 5440, UID: 9617619, Anchor: "主播"}, Record, "admin"); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateRoom(ctx, Room{RoomID: 5440, Title: "新标题"}); err != nil {
		t.Fatal(err)
	}
	wants, err := s.SubscribedRooms(ctx)
	if err != nil || len(wants) != 1 || wants[0].UID != 9617619 || wants[0].Title != "新标题" {
		t.Errorf("SubscribedRooms = %+v, %v; want room 5440 with anchor uid 9617619 and the new title", wants, err)
	}
	if subs, _ := s.ChatSubscriptions(ctx, chat.ID); len(subs) != 1 || subs[0].UID != 9617619 {
		t.Errorf("ChatSubscriptions = %+v, want the anchor uid", subs)
	}
}
