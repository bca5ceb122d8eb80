package storage

import (
	"context"
	"os"
	"testing"
	"time"
)

func TestRetention(t *testing.T) {
	s, dir := openTest(t)
	ctx := context.Background()
	now := s.opts.Now()
	a, _ := s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "a"})
	b, _ := s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "b"})
	s.Subscribe(ctx, a.ID, Room{RoomID: 1}, Record, "")
	s.Subscribe(ctx, b.ID, Room{RoomID: 1}, Record, "")
	// Four recordings of 100 bytes, 40, 20, 10 and 1 days old, shared by
	// both chats.
	paths := map[int]string{}
	for _, age := range []int{40, 20, 10, 1} {
		p := "1/" + time.Duration(age).String() + ".flv"
		paths[age] = writeFile(t, dir, p, make([]byte, 100))
		s.CreateRecording(ctx, NewRecording{RoomID: 1, Path: p, Started: now.Add(-time.Duration(age) * 24 * time.Hour)})
		s.CompleteRecording(ctx, p, RecordingEnd{Size: 100, Ended: now})
	}
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
