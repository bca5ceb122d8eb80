package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mattn/go-sqlite3"

	"roomrec"
)

// Recording statuses.
const (
	Writing     = "writing"
	Complete    = "complete"
	Interrupted = "interrupted" // ended by an error or a crash; what was written plays
	Deleted     = "deleted"     // no chat keeps it; the file is gone
)

// Recording is one video file.
type Recording struct {
	ID          int64
	RoomID      int64
	Path        string // relative to the recordings directory
	DanmakuPath string
	Title       string
	Size        int64
	Duration    time.Duration
	Started     time.Time
	Ended       time.Time // zero while writing
	Status      string
}

// NewRecording is a file that has just been opened.
type NewRecording struct {
	RoomID    int64
	LiveStart time.Time // the broadcast it belongs to
	Path      string
	Title     string
	Started   time.Time
	// Chats, when not nil, are the chats whose archive the file joins:
	// those of them that record the room (the others are left out). The
	// bot names the chats whose rules count the broadcast; an empty,
	// non-nil list puts the file in no archive. Nil: every chat that
	// records the room.
	Chats []int64
}

// RecordingEnd is how a file ended.
type RecordingEnd struct {
	Size        int64
	Duration    time.Duration
	Ended       time.Time
	Interrupted bool
	DanmakuPath string
}

// CreateRecording indexes a file that has just been opened, as writing. It
// joins the archive of every chat that records the room now, or of those
// of them nr.Chats names, and the room's recording session; the webhook
// event FileOpening is queued.
func (s *Store) CreateRecording(ctx context.Context, nr NewRecording) (Recording, error) {
	rec := Recording{RoomID: nr.RoomID, Path: nr.Path, Title: nr.Title, Started: nr.Started, Status: Writing}
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := upsertRoom(ctx, tx, Room{RoomID: nr.RoomID}, s.now()); err != nil {
			return err
		}
		var session sql.NullInt64
		err := tx.QueryRowContext(ctx, `
			INSERT INTO live_sessions (room_id, live_start, title) VALUES (?, ?, ?)
			ON CONFLICT (room_id, live_start) DO UPDATE SET room_id = room_id
			RETURNING id`, nr.RoomID, nr.LiveStart.UnixMilli(), nr.Title).Scan(&session)
		if err != nil {
			return err
		}
		err = tx.QueryRowContext(ctx, `
			INSERT INTO recordings (session_id, room_id, path, title, started_at, status) VALUES (?, ?, ?, ?, ?, ?)
			RETURNING id`, session, nr.RoomID, nr.Path, nr.Title, nr.Started.UnixMilli(), Writing).Scan(&rec.ID)
		if isUniqueViolation(err) {
			return roomrec.Errorf(roomrec.ECONFLICT, "A recording at %s is already indexed.", nr.Path)
		}
		if err != nil {
			return err
		}
		if nr.Chats == nil {
			_, err = tx.ExecContext(ctx, `
				INSERT INTO archive (chat_id, recording_id, started_at, room_id)
				SELECT chat_id, ?, ?, room_id FROM subscriptions WHERE room_id = ? AND mode = 'record'`,
				rec.ID, nr.Started.UnixMilli(), nr.RoomID)
		} else {
			var chats []byte
			if chats, err = json.Marshal(nr.Chats); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `
				INSERT INTO archive (chat_id, recording_id, started_at, room_id)
				SELECT chat_id, ?, ?, room_id FROM subscriptions
				WHERE room_id = ? AND mode = 'record' AND chat_id IN (SELECT value FROM json_each(?))`,
				rec.ID, nr.Started.UnixMilli(), nr.RoomID, string(chats))
		}
		if err != nil {
			return err
		}
		return s.fileOpening(ctx, tx, rec.ID, session.Int64, nr)
	})
	if err != nil {
		return Recording{}, fmt.Errorf("index recording %s: %w", nr.Path, err)
	}
	return rec, nil
}

// CompleteRecording records how a file ended and queues the webhook event
// FileClosed, unless no chat keeps the file (then it is deleted). It
// returns an error wrapping ErrNotFound if the path was never indexed.
func (s *Store) CompleteRecording(ctx context.Context, path string, end RecordingEnd) error {
	status := Complete
	if end.Interrupted {
		status = Interrupted
	}
	var orphan Recording
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
			UPDATE recordings SET size = ?, duration_ms = ?, ended_at = ?, status = ?, danmaku_path = ?
			WHERE path = ? AND status = 'writing'`,
			end.Size, end.Duration.Milliseconds(), end.Ended.UnixMilli(), status, end.DanmakuPath, path)
		if err := changedOne(res, err, "No recording is being written at %s.", path); err != nil {
			return err
		}
		// Every chat deleted it while it was being written: now that it
		// is finished, it goes, as it would have then.
		var keepers int
		if err := tx.QueryRowContext(ctx, `
			SELECT count(*) FROM archive a JOIN recordings r ON r.id = a.recording_id WHERE r.path = ?`, path).Scan(&keepers); err != nil {
			return err
		}
		if keepers > 0 {
			return s.fileClosed(ctx, tx, path, end, true)
		}
		if orphan, err = scanRecording(tx.QueryRowContext(ctx, `SELECT `+recordingColumns+` FROM recordings r WHERE r.path = ?`, path)); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE recordings SET status = 'deleted' WHERE id = ?`, orphan.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("complete recording %s: %w", path, err)
	}
	if orphan.Path != "" {
		if err := s.removeFiles(orphan); err != nil {
			s.log.Warn("recording no chat keeps was not removed from disk", "path", orphan.Path, "err", err)
		}
	}
	return nil
}

const recordingColumns = `r.id, r.room_id, r.path, r.danmaku_path, r.title, r.size, r.duration_ms, r.started_at, coalesce(r.ended_at, 0), r.status`

func scanRecording(row interface{ Scan(...any) error }) (Recording, error) {
	var rec Recording
	var durMs, started, ended int64
	err := row.Scan(&rec.ID, &rec.RoomID, &rec.Path, &rec.DanmakuPath, &rec.Title, &rec.Size, &durMs, &started, &ended, &rec.Status)
	rec.Duration = time.Duration(durMs) * time.Millisecond
	rec.Started = time.UnixMilli(started)
	if ended != 0 {
		rec.Ended = time.UnixMilli(ended)
	}
	return rec, err
}

// RecordingByPath returns the recording at a path.
func (s *Store) RecordingByPath(ctx context.Context, path string) (Recording, error) {
	rec, err := scanRecording(s.db.QueryRowContext(ctx, `SELECT `+recordingColumns+` FROM recordings r WHERE r.path = ?`, path))
	if errors.Is(err, sql.ErrNoRows) {
		return Recording{}, notFound("No recording at %s.", path)
	}
	return rec, err
}

// isUniqueViolation reports whether err is SQLite refusing a duplicate.
func isUniqueViolation(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique
}

// RecordingByID returns a recording by id, whatever chat keeps it.
func (s *Store) RecordingByID(ctx context.Context, id int64) (Recording, error) {
	rec, err := scanRecording(s.db.QueryRowContext(ctx, `SELECT `+recordingColumns+` FROM recordings r WHERE r.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Recording{}, notFound("No recording %d.", id)
	}
	return rec, err
}
