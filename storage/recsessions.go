package storage

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"roomrec/webhook"
)

// RecordingSession is one download of a broadcast: from the first stream
// picked to the end of the download. A broadcast whose download failed
// and started again, or that roomrec stopped recording and took up again,
// has several. UUID is its webhook SessionId.
type RecordingSession struct {
	ID        int64
	UUID      string
	RoomID    int64
	LiveStart time.Time
	Started   time.Time
}

// StartRecordingSession records that a download of the broadcast of
// roomID that started at liveStart began now, and queues SessionStarted.
// A session of the room still open (its end was never recorded) is ended
// first, with its SessionEnded.
func (s *Store) StartRecordingSession(ctx context.Context, roomID int64, liveStart time.Time) (RecordingSession, error) {
	rs := RecordingSession{RoomID: roomID, LiveStart: liveStart}
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := upsertRoom(ctx, tx, Room{RoomID: roomID}, s.now()); err != nil {
			return err
		}
		live, err := liveSessionFor(ctx, tx, roomID, liveStart, "")
		if err != nil {
			return err
		}
		if err := s.endRecordingSessions(ctx, tx, roomID, true); err != nil {
			return err
		}
		rs.ID, rs.UUID, rs.Started, err = s.startRecordingSession(ctx, tx, roomID, live)
		return err
	})
	if err != nil {
		return RecordingSession{}, fmt.Errorf("start recording session of room %d: %w", roomID, err)
	}
	return rs, nil
}

// EndRecordingSession records that the room's open recording session is
// over and queues SessionEnded; roomEnded says the broadcast ended with
// it. With no session open it does nothing.
func (s *Store) EndRecordingSession(ctx context.Context, roomID int64, roomEnded bool) error {
	err := s.write(ctx, func(tx *sql.Tx) error { return s.endRecordingSessions(ctx, tx, roomID, !roomEnded) })
	if err != nil {
		return fmt.Errorf("end recording session of room %d: %w", roomID, err)
	}
	return nil
}

// liveSessionFor returns the id of the broadcast of roomID that started at
// liveStart, creating it if no event made it yet.
func liveSessionFor(ctx context.Context, tx *sql.Tx, roomID int64, liveStart time.Time, title string) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `
		INSERT INTO live_sessions (room_id, live_start, title) VALUES (?, ?, ?)
		ON CONFLICT (room_id, live_start) DO UPDATE SET room_id = room_id
		RETURNING id`, roomID, liveStart.UnixMilli(), title).Scan(&id)
	return id, err
}

// startRecordingSession opens a recording session of the broadcast live
// and queues SessionStarted.
func (s *Store) startRecordingSession(ctx context.Context, tx *sql.Tx, roomID, live int64) (int64, string, time.Time, error) {
	now := s.opts.Now()
	id := webhook.NewID()
	var rowID int64
	err := tx.QueryRowContext(ctx, `
		INSERT INTO recording_sessions (uuid, session_id, room_id, started_at) VALUES (?, ?, ?, ?) RETURNING id`,
		id, live, roomID, now.UnixMilli()).Scan(&rowID)
	if err != nil {
		return 0, "", time.Time{}, err
	}
	if s.hooksOn.Load() {
		streaming, err := liveNow(ctx, tx, live)
		if err != nil {
			return 0, "", time.Time{}, err
		}
		room, err := s.hookRoom(ctx, tx, roomID, true, streaming)
		if err != nil {
			return 0, "", time.Time{}, err
		}
		ev := webhook.NewEvent(webhook.SessionStarted, hookTime(now), webhook.Session{SessionID: id, Room: room})
		if err := s.queueWebhook(ctx, tx, roomID, ev); err != nil {
			return 0, "", time.Time{}, err
		}
	}
	return rowID, id, now, nil
}

// currentRecordingSession returns the room's open recording session of the
// broadcast live, opening one (with its SessionStarted) if there is none:
// a file opened with no session recorded still belongs to one.
func (s *Store) currentRecordingSession(ctx context.Context, tx *sql.Tx, roomID, live int64) (int64, string, error) {
	var id, of int64
	var uuid string
	err := tx.QueryRowContext(ctx, `
		SELECT id, uuid, session_id FROM recording_sessions WHERE room_id = ? AND ended_at IS NULL ORDER BY id DESC LIMIT 1`,
		roomID).Scan(&id, &uuid, &of)
	if err == nil && of == live {
		return id, uuid, nil
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, "", err
	}
	if err := s.endRecordingSessions(ctx, tx, roomID, true); err != nil {
		return 0, "", err
	}
	id, uuid, _, err = s.startRecordingSession(ctx, tx, roomID, live)
	return id, uuid, err
}

// endRecordingSessions ends every open recording session of roomID and
// queues SessionEnded for each; streaming says whether the room may still
// be live.
func (s *Store) endRecordingSessions(ctx context.Context, tx *sql.Tx, roomID int64, streaming bool) error {
	return s.endRecordingSessionsWhere(ctx, tx, `room_id = ?`, []any{roomID}, streaming)
}

// endRecordingSessionsWhere ends the open recording sessions that match
// where, in the order they started.
func (s *Store) endRecordingSessionsWhere(ctx context.Context, tx *sql.Tx, where string, args []any, streaming bool) error {
	now := s.opts.Now()
	rows, err := tx.QueryContext(ctx, `
		UPDATE recording_sessions SET ended_at = ? WHERE ended_at IS NULL AND `+where+`
		RETURNING id, uuid, room_id, session_id`, append([]any{now.UnixMilli()}, args...)...)
	if err != nil {
		return err
	}
	type ended struct {
		id, roomID, live int64
		uuid             string
	}
	var all []ended
	for rows.Next() {
		var e ended
		if err := rows.Scan(&e.id, &e.uuid, &e.roomID, &e.live); err != nil {
			rows.Close()
			return err
		}
		all = append(all, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if !s.hooksOn.Load() {
		return nil
	}
	// RETURNING gives no order.
	slices.SortFunc(all, func(a, b ended) int { return cmp.Compare(a.id, b.id) })
	for _, e := range all {
		live := false
		if streaming {
			if live, err = liveNow(ctx, tx, e.live); err != nil {
				return err
			}
		}
		room, err := s.hookRoom(ctx, tx, e.roomID, false, live)
		if err != nil {
			return err
		}
		ev := webhook.NewEvent(webhook.SessionEnded, hookTime(now), webhook.Session{SessionID: e.uuid, Room: room})
		if err := s.queueWebhook(ctx, tx, e.roomID, ev); err != nil {
			return err
		}
	}
	return nil
}

// liveNow reports whether the broadcast live has not ended.
func liveNow(ctx context.Context, tx *sql.Tx, live int64) (bool, error) {
	var open bool
	err := tx.QueryRowContext(ctx, `SELECT ended_at IS NULL FROM live_sessions WHERE id = ?`, live).Scan(&open)
	return open, err
}

// recordingOpen reports whether a recording session of roomID is open.
func recordingOpen(ctx context.Context, tx *sql.Tx, roomID int64) (bool, error) {
	var open bool
	err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM recording_sessions WHERE room_id = ? AND ended_at IS NULL)`, roomID).Scan(&open)
	return open, err
}
