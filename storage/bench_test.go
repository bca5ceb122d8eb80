package storage

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"
)

// BenchmarkCreateRecording indexes a file shared by three recording chats.
func BenchmarkCreateRecording(b *testing.B) {
	s, _ := openTest(b)
	ctx := context.Background()
	for i := range 3 {
		chat, _ := s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: fmt.Sprint(i)})
		s.Subscribe(ctx, chat.ID, Room{RoomID: 5440}, Record, "")
	}
	start := time.Now()
	i := 0
	for b.Loop() {
		i++
		if _, err := s.CreateRecording(ctx, NewRecording{RoomID: 5440, LiveStart: start, Path: fmt.Sprintf("5440/%d.flv", i), Started: time.Now()}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkArchivePage lists a page of ten from the middle of a chat's
// archive of 10,000 recordings, with its totals.
func BenchmarkArchivePage(b *testing.B) {
	s, _ := openTest(b)
	ctx := context.Background()
	chat, _ := s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "1"})
	s.Subscribe(ctx, chat.ID, Room{RoomID: 1}, Record, "")
	s.Subscribe(ctx, chat.ID, Room{RoomID: 2}, Record, "")
	base := time.Unix(1700000000, 0)
	err := s.write(ctx, func(tx *sql.Tx) error {
		for i := range 10000 {
			room := 1 + i%2
			res, err := tx.ExecContext(ctx, `INSERT INTO recordings (room_id, path, size, duration_ms, started_at, status) VALUES (?, ?, ?, ?, ?, 'complete')`,
				room, fmt.Sprintf("%d/%d.flv", room, i), 1<<30, 3600000, base.Add(time.Duration(i)*time.Minute).UnixMilli())
			if err != nil {
				return err
			}
			id, _ := res.LastInsertId()
			if _, err := tx.ExecContext(ctx, `INSERT INTO archive (chat_id, recording_id, started_at, room_id) VALUES (?, ?, ?, ?)`,
				chat.ID, id, base.Add(time.Duration(i)*time.Minute).UnixMilli(), room); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		page, err := s.Archive(ctx, chat.ID, ArchiveQuery{Limit: 10, Offset: 5000})
		if err != nil || len(page.Items) != 10 || page.Total != 10000 {
			b.Fatalf("page %d items of %d: %v", len(page.Items), page.Total, err)
		}
	}
}
