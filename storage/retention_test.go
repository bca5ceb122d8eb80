package storage

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// sharedArchive makes two chats recording room 1, sharing four finished
// recordings of 100 bytes, 40, 20, 10 and 1 days old, and returns the
// chats and the files by age.
func sharedArchive(t *testing.T, s *Store, dir string) (a, b Chat, paths map[int]string) {
	t.Helper()
	ctx := context.Background()
	now := s.opts.Now()
	a, _ = s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "a"})
	b, _ = s.EnsureChat(ctx, Chat{Platform: Discord, PlatformID: "b"})
	s.Subscribe(ctx, a.ID, Room{RoomID: 1}, Record, "")
	s.Subscribe(ctx, b.ID, Room{RoomID: 1}, Record, "")
	paths = map[int]string{}
	for _, age := range []int{40, 20, 10, 1} {
		p := "1/" + time.Duration(age).String() + ".flv"
		paths[age] = writeFile(t, dir, p, make([]byte, 100))
		s.CreateRecording(ctx, NewRecording{RoomID: 1, Path: p, Started: now.Add(-time.Duration(age) * day)})
		s.CompleteRecording(ctx, p, RecordingEnd{Size: 100, Ended: now})
	}
	return a, b, paths
}

func TestRetention(t *testing.T) {
	s, dir := openTest(t)
	ctx := context.Background()
	now := s.opts.Now()
	a, b, paths := sharedArchive(t, s, dir)
	// Another writing one is never touched.
	s.CreateRecording(ctx, NewRecording{RoomID: 1, Path: "1/now.flv", Started: now.Add(-90 * 24 * time.Hour)})
	s.DeleteFromArchive(ctx, b.ID, 1) // b gave up the 40-day-old one: a alone keeps it

	pruned, err := s.ApplyRetention(ctx, Retention{MaxAge: 30 * 24 * time.Hour, MaxBytes: 150})
	if err != nil {
		t.Fatal(err)
	}
	var forA, forB Pruned
	for _, p := range pruned {
		switch p.Chat.ID {
		case a.ID:
			forA = p
		case b.ID:
			forB = p
		}
	}
	// a: the 40-day one (age), then 20 and 10 (over 150 bytes): 1 day left.
	if len(forA.Recordings) != 3 || forA.Freed != 100 {
		t.Errorf("chat a pruned %d recordings, freed %d, want 3 and 100 bytes (only the file nobody else keeps)", len(forA.Recordings), forA.Freed)
	}
	if _, err := os.Stat(paths[40]); !os.IsNotExist(err) {
		t.Error("the 40-day-old file nobody keeps is still on disk")
	}
	for _, age := range []int{20, 10} {
		if _, err := os.Stat(paths[age]); !os.IsNotExist(err) {
			t.Errorf("the %d-day-old file is on disk after both chats pruned it", age)
		}
	}
	if _, err := os.Stat(paths[1]); err != nil {
		t.Error("the newest file was removed")
	}
	page, _ := s.Archive(ctx, a.ID, ArchiveQuery{})
	if page.Total != 2 { // the 1-day one and the one being written
		t.Errorf("chat a keeps %d, want 2", page.Total)
	}
	if len(forB.Recordings) != 2 || forB.Freed != 200 {
		t.Errorf("chat b pruned %d, freed %d; want the 20- and 10-day ones (over 150 bytes), whose files then go", len(forB.Recordings), forB.Freed)
	}
	if again, _ := s.ApplyRetention(ctx, Retention{MaxAge: 30 * 24 * time.Hour, MaxBytes: 150}); len(again) != 0 {
		t.Errorf("second pass pruned %+v", again)
	}
}

func TestChatRetention(t *testing.T) {
	s, dir := openTest(t)
	ctx := context.Background()
	a, b, paths := sharedArchive(t, s, dir)

	if got, err := s.ChatRetention(ctx, a.ID); err != nil || !got.IsZero() {
		t.Fatalf("a new chat's policy = %+v, %v; want none", got, err)
	}
	if err := s.SetChatRetention(ctx, a.ID, Retention{MaxAge: 15 * day}); err != nil {
		t.Fatal(err)
	}
	// b asks for more than the server allows: the server's 30 days win.
	if err := s.SetChatRetention(ctx, b.ID, Retention{MaxAge: 60 * day, MaxBytes: 1 << 40}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ChatRetention(ctx, b.ID); got.MaxAge != 60*day || got.MaxBytes != 1<<40 {
		t.Errorf("b's policy reads back as %+v", got)
	}
	if err := s.SetChatRetention(ctx, 999, Retention{MaxAge: day}); !errors.Is(err, ErrNotFound) {
		t.Errorf("policy for an unknown chat = %v, want not found", err)
	}

	pruned, err := s.ApplyRetention(ctx, Retention{MaxAge: 30 * day})
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]int{}
	for _, p := range pruned {
		got[p.Chat.ID] = len(p.Recordings)
	}
	if got[a.ID] != 2 || got[b.ID] != 1 {
		t.Errorf("pruned %v recordings per chat, want a: 2 (its own 15 days), b: 1 (the server's 30 days)", got)
	}
	if _, err := os.Stat(paths[40]); !os.IsNotExist(err) {
		t.Error("the 40-day-old file both chats dropped is still on disk")
	}
	if _, err := os.Stat(paths[20]); err != nil {
		t.Error("the 20-day-old file b still keeps was removed")
	}

	// Tightening a chat's policy prunes at once, for that chat only.
	if err := s.SetChatRetention(ctx, b.ID, Retention{MaxBytes: 150}); err != nil {
		t.Fatal(err)
	}
	p, err := s.ApplyChatRetention(ctx, b, Retention{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Recordings) != 2 || p.Recordings[0].Started.After(p.Recordings[1].Started) || p.Freed != 100 {
		t.Errorf("b pruned %+v, want the 20- and 10-day ones oldest first, freeing the 20-day file only a no longer keeps", p)
	}

	// Clearing the policy leaves the server's alone.
	if err := s.SetChatRetention(ctx, a.ID, Retention{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ChatRetention(ctx, a.ID); !got.IsZero() {
		t.Errorf("cleared policy reads back as %+v", got)
	}
	if again, _ := s.ApplyRetention(ctx, Retention{}); len(again) != 0 {
		t.Errorf("no policy anywhere, yet pruned %+v", again)
	}
}

func TestChatRetentionFollowsMigration(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	group, _ := s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "-123"})
	s.SetChatRetention(ctx, group.ID, Retention{MaxAge: 7 * day})
	super, _ := s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "-100123"})
	if err := s.MigrateChat(ctx, Telegram, "-123", "-100123"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ChatRetention(ctx, super.ID); got.MaxAge != 7*day {
		t.Errorf("supergroup's policy = %+v, want the group's 7 days", got)
	}
}
