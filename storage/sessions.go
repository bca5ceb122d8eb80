package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"roomrec/webhook"
)

// LiveSession is one broadcast of a room. LiveStart identifies it.
type LiveSession struct {
	ID        int64
	RoomID    int64
	LiveStart time.Time
	LiveKey   string
	Title     string
	Ended     time.Time // zero while live
}

// Alert is a message a chat was sent about a broadcast.
type Alert struct {
	Chat
	MessageID string
}

// StartLiveSession returns the broadcast of roomID that started at
// liveStart, creating it the first time. Calling it again for the same
// broadcast (LIVE twice, a restart) returns the same session. The first
// call queues the webhook event StreamStarted.
func (s *Store) StartLiveSession(ctx context.Context, roomID int64, liveStart time.Time, liveKey, title string) (LiveSession, error) {
	ls := LiveSession{RoomID: roomID, LiveStart: liveStart, LiveKey: liveKey, Title: title}
	err := s.write(ctx, func(tx *sql.Tx) error {
		now := s.now()
		if err := upsertRoom(ctx, tx, Room{RoomID: roomID}, now); err != nil {
			return err
		}
		// The first time the broadcast is seen, and only then, the
		// webhooks hear that the room went live.
		var known bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM live_sessions WHERE room_id = ? AND live_start = ?)`,
			roomID, liveStart.UnixMilli()).Scan(&known); err != nil {
			return err
		}
		var ended sql.NullInt64
		err := tx.QueryRowContext(ctx, `
			INSERT INTO live_sessions (room_id, live_start, live_key, title) VALUES (?, ?, ?, ?)
			ON CONFLICT (room_id, live_start) DO UPDATE SET
				live_key = CASE WHEN excluded.live_key != '' THEN excluded.live_key ELSE live_key END,
				title = CASE WHEN title = '' THEN excluded.title ELSE title END
			RETURNING id, live_key, title, ended_at`,
			roomID, liveStart.UnixMilli(), liveKey, title).Scan(&ls.ID, &ls.LiveKey, &ls.Title, &ended)
		if err != nil || known || !s.hooksOn.Load() {
			return err
		}
		recording, err := recordingOpen(ctx, tx, roomID)
		if err != nil {
			return err
		}
		return s.queueRoomEvent(ctx, tx, webhook.StreamStarted, roomID, recording, true)
	})
	if err != nil {
		return LiveSession{}, fmt.Errorf("start live session of room %d: %w", roomID, err)
	}
	return ls, nil
}

// AlertRejected is kept as an alert's message id when the platform refused
// it (the bot was removed from the chat): it is neither sent again after a
// restart nor followed by an end message.
const AlertRejected = "rejected"

// ClaimAlert reserves the right to alert a chat about a broadcast. It
// returns true once per broadcast and chat: a second LIVE, a reconnect or
// a restart gets false and sends nothing. The one exception is an alert a
// previous run claimed but never delivered (no message id: it was still
// queued, or retrying through a platform outage, when that run stopped):
// the first claim after a restart gets it again, so the alert is late
// rather than lost.
func (s *Store) ClaimAlert(ctx context.Context, sessionID, chatID int64) (bool, error) {
	var claimed bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
			INSERT INTO alerts (session_id, chat_id, sent_at) VALUES (?, ?, ?)
			ON CONFLICT (session_id, chat_id) DO UPDATE SET sent_at = excluded.sent_at
			WHERE alerts.message_id = '' AND alerts.sent_at < ?`, sessionID, chatID, s.now(), s.opened)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		claimed = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("claim alert: %w", err)
	}
	return claimed, nil
}

// AlertedChats returns the chats that hold an alert for a broadcast
// (claimed, sent or rejected), by chat id.
func (s *Store) AlertedChats(ctx context.Context, sessionID int64) ([]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT chat_id FROM alerts WHERE session_id = ? ORDER BY chat_id`, sessionID)
	if err != nil {
		return nil, fmt.Errorf("alerted chats of session %d: %w", sessionID, err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// SetAlertMessage records the platform's id for an alert message, so it can
// be edited when the broadcast ends.
func (s *Store) SetAlertMessage(ctx context.Context, sessionID, chatID int64, messageID string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE alerts SET message_id = ? WHERE session_id = ? AND chat_id = ?`, messageID, sessionID, chatID)
		return changedOne(res, err, "No alert for session %d in chat %d.", sessionID, chatID)
	})
}

// EndLiveSession marks a broadcast ended and returns the alerts sent for
// it, to be edited. Ending it again returns the alerts again. The first end
// ends a recording session of the room still open (SessionEnded) and
// queues StreamEnded. It returns an error wrapping ErrNotFound for a
// broadcast never started.
func (s *Store) EndLiveSession(ctx context.Context, roomID int64, liveStart, ended time.Time) ([]Alert, error) {
	var alerts []Alert
	err := s.write(ctx, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM live_sessions WHERE room_id = ? AND live_start = ?`, roomID, liveStart.UnixMilli()).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("No broadcast of room %d started at %s.", roomID, liveStart.Format(time.RFC3339))
		}
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE live_sessions SET ended_at = ? WHERE id = ? AND ended_at IS NULL`, ended.UnixMilli(), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			// A session whose end was not recorded ends with the broadcast.
			if err := s.endRecordingSessions(ctx, tx, roomID, false); err != nil {
				return err
			}
			if err := s.queueRoomEvent(ctx, tx, webhook.StreamEnded, roomID, false, false); err != nil {
				return err
			}
		}
		rows, err := tx.QueryContext(ctx, `
			SELECT c.id, c.platform, c.platform_id, c.title, a.message_id
			FROM alerts a JOIN chats c ON c.id = a.chat_id WHERE a.session_id = ? ORDER BY c.id`, id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var a Alert
			if err := rows.Scan(&a.ID, &a.Platform, &a.PlatformID, &a.Title, &a.MessageID); err != nil {
				return err
			}
			alerts = append(alerts, a)
		}
		return rows.Err()
	})
	return alerts, err
}
