package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"roomrec/webhook"
)

// The webhook outbox. Events are queued by the methods that record their
// facts, in the same transaction, so an event exists exactly when its
// fact does; package webhook reads them in order through a cursor per
// URL (Store implements webhook.Outbox). Nothing is queued until
// RegisterWebhooks names at least one URL.

var _ webhook.Outbox = (*Store)(nil)

// hookSignal wakes the webhook workers when an event is committed.
type hookSignal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (h *hookSignal) wait() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ch == nil {
		h.ch = make(chan struct{})
	}
	return h.ch
}

func (h *hookSignal) fire() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ch != nil {
		close(h.ch)
		h.ch = nil
	}
}

// WebhookQueued returns a channel that is closed when the next webhook
// event is committed.
func (s *Store) WebhookQueued() <-chan struct{} { return s.hookWake.wait() }

// RegisterWebhooks makes urls the ones events are queued for. A URL new
// to the database starts after the events queued so far; a URL no longer
// listed is forgotten, with what it had not received. With no URL,
// nothing is queued and what was queued is deleted.
func (s *Store) RegisterWebhooks(ctx context.Context, urls []string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		keep := map[string]bool{}
		for _, u := range urls {
			keep[u] = true
		}
		rows, err := tx.QueryContext(ctx, `SELECT url FROM webhook_cursors`)
		if err != nil {
			return err
		}
		var gone []string
		for rows.Next() {
			var u string
			if err := rows.Scan(&u); err != nil {
				rows.Close()
				return err
			}
			if !keep[u] {
				gone = append(gone, u)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, u := range gone {
			if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_cursors WHERE url = ?`, u); err != nil {
				return err
			}
		}
		for _, u := range urls {
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO webhook_cursors (url, delivered_seq) SELECT ?, coalesce(max(seq), 0) FROM webhook_events WHERE true
				ON CONFLICT (url) DO NOTHING`, u); err != nil {
				return err
			}
		}
		return pruneWebhookEvents(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("register webhooks: %w", err)
	}
	s.hooksOn.Store(len(urls) > 0)
	return nil
}

// pruneWebhookEvents deletes the events every URL is past.
func pruneWebhookEvents(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `
		DELETE FROM webhook_events WHERE seq <= coalesce(
			(SELECT min(delivered_seq) FROM webhook_cursors),
			(SELECT max(seq) FROM webhook_events))`)
	return err
}

// PendingWebhooks returns, oldest first, up to limit events url has
// neither confirmed nor given up. A URL not registered has none.
func (s *Store) PendingWebhooks(ctx context.Context, url string, limit int) ([]webhook.Pending, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT e.seq, e.event_id, e.event_type, e.queued_at, e.body
		FROM webhook_cursors c JOIN webhook_events e ON e.seq > c.delivered_seq
		WHERE c.url = ? ORDER BY e.seq LIMIT ?`, url, limit)
	if err != nil {
		return nil, fmt.Errorf("pending webhooks: %w", err)
	}
	defer rows.Close()
	var out []webhook.Pending
	for rows.Next() {
		var p webhook.Pending
		var queued int64
		if err := rows.Scan(&p.Seq, &p.ID, &p.Type, &queued, &p.Body); err != nil {
			return nil, err
		}
		p.Queued = time.UnixMilli(queued)
		out = append(out, p)
	}
	return out, rows.Err()
}

// WebhookDelivered records that url confirmed every event up to seq.
func (s *Store) WebhookDelivered(ctx context.Context, url string, seq int64) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `
			UPDATE webhook_cursors SET delivered_seq = max(delivered_seq, ?), failing_since = NULL, last_error = ''
			WHERE url = ?`, seq, url); err != nil {
			return err
		}
		return pruneWebhookEvents(ctx, tx)
	})
}

// WebhookGivenUp records that url will not get event seq, and why.
func (s *Store) WebhookGivenUp(ctx context.Context, url string, seq int64, reason string, at time.Time) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `
			UPDATE webhook_cursors SET delivered_seq = max(delivered_seq, ?), failing_since = coalesce(failing_since, ?), last_error = ?
			WHERE url = ?`, seq, at.UnixMilli(), reason, url); err != nil {
			return err
		}
		return pruneWebhookEvents(ctx, tx)
	})
}

// WebhookFailed records a failed attempt at url that will be retried.
func (s *Store) WebhookFailed(ctx context.Context, url, reason string, at time.Time) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
			UPDATE webhook_cursors SET failing_since = coalesce(failing_since, ?), last_error = ? WHERE url = ?`,
			at.UnixMilli(), reason, url)
		return err
	})
}

// WebhookBacklog returns every registered URL's backlog, by URL.
func (s *Store) WebhookBacklog(ctx context.Context) ([]webhook.Backlog, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT c.url, (SELECT count(*) FROM webhook_events e WHERE e.seq > c.delivered_seq), coalesce(c.failing_since, 0), c.last_error
		FROM webhook_cursors c ORDER BY c.url`)
	if err != nil {
		return nil, fmt.Errorf("webhook backlog: %w", err)
	}
	defer rows.Close()
	var out []webhook.Backlog
	for rows.Next() {
		var b webhook.Backlog
		var since int64
		if err := rows.Scan(&b.URL, &b.Pending, &since, &b.LastError); err != nil {
			return nil, err
		}
		if since != 0 {
			b.FailingSince = time.UnixMilli(since)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// queueWebhook adds ev to the outbox in tx, if webhooks are on. The
// workers are woken once tx commits.
func (s *Store) queueWebhook(ctx context.Context, tx *sql.Tx, roomID int64, ev webhook.Event) error {
	if !s.hooksOn.Load() {
		return nil
	}
	body, err := ev.Body()
	if err != nil {
		return fmt.Errorf("encode webhook %s: %w", ev.Type, err)
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO webhook_events (event_id, event_type, room_id, queued_at, body) VALUES (?, ?, ?, ?, ?)`,
		ev.ID, ev.Type, roomID, time.Time(ev.Time).UnixMilli(), body); err != nil {
		return fmt.Errorf("queue webhook %s: %w", ev.Type, err)
	}
	s.hookTxs.Store(tx, true)
	return nil
}

// hookTime is t as events write it: in the machine's zone, as
// BililiveRecorder writes times.
func hookTime(t time.Time) time.Time { return t.In(time.Local) }

// hookRoom returns what every event says of the room, with roomrec's state
// after the fact: recording (a recording session is open) and streaming
// (the room is live).
func (s *Store) hookRoom(ctx context.Context, tx *sql.Tx, roomID int64, recording, streaming bool) (webhook.Room, error) {
	r := webhook.Room{RoomID: roomID, Recording: recording, Streaming: streaming}
	err := tx.QueryRowContext(ctx, `SELECT short_id, anchor, title, area, parent_area FROM rooms WHERE room_id = ?`, roomID).
		Scan(&r.ShortID, &r.Name, &r.Title, &r.AreaNameChild, &r.AreaNameParent)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("room %d for a webhook: %w", roomID, err)
	}
	if f := s.opts.DanmakuConnected; f != nil {
		r.DanmakuConnected = f(roomID)
	}
	return r, nil
}

// queueRoomEvent queues StreamStarted or StreamEnded.
func (s *Store) queueRoomEvent(ctx context.Context, tx *sql.Tx, typ string, roomID int64, recording, streaming bool) error {
	if !s.hooksOn.Load() {
		return nil
	}
	room, err := s.hookRoom(ctx, tx, roomID, recording, streaming)
	if err != nil {
		return err
	}
	return s.queueWebhook(ctx, tx, roomID, webhook.NewEvent(typ, hookTime(s.opts.Now()), room))
}

// fileOpening ties a new recording to the room's recording session and
// queues FileOpening.
func (s *Store) fileOpening(ctx context.Context, tx *sql.Tx, recordingID, live int64, nr NewRecording) error {
	sessionID, uuid, err := s.currentRecordingSession(ctx, tx, nr.RoomID, live)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE recordings SET recording_session_id = ? WHERE id = ?`, sessionID, recordingID); err != nil {
		return err
	}
	if !s.hooksOn.Load() {
		return nil
	}
	streaming, err := liveNow(ctx, tx, live)
	if err != nil {
		return err
	}
	room, err := s.hookRoom(ctx, tx, nr.RoomID, true, streaming)
	if err != nil {
		return err
	}
	data := webhook.FileOpeningData{SessionID: uuid, RelativePath: nr.Path, FileOpenTime: webhook.Time(hookTime(time.UnixMilli(nr.Started.UnixMilli()))), Room: room}
	return s.queueWebhook(ctx, tx, nr.RoomID, webhook.NewEvent(webhook.FileOpening, hookTime(s.opts.Now()), data))
}

// fileClosed queues FileClosed for the recording at path, finished as end
// says. live says the file was finished by the recording session that
// wrote it; otherwise it was finished by the crash check of a later start,
// and the room is neither recorded nor known to be live.
func (s *Store) fileClosed(ctx context.Context, tx *sql.Tx, path string, end RecordingEnd, live bool) error {
	if !s.hooksOn.Load() {
		return nil
	}
	var roomID, started int64
	var broadcast sql.NullInt64
	uuid := webhook.NilID
	var sessionOpen bool
	err := tx.QueryRowContext(ctx, `
		SELECT r.room_id, r.started_at, r.session_id, coalesce(rs.uuid, ?), coalesce(rs.ended_at IS NULL, 0)
		FROM recordings r LEFT JOIN recording_sessions rs ON rs.id = r.recording_session_id WHERE r.path = ?`,
		webhook.NilID, path).Scan(&roomID, &started, &broadcast, &uuid, &sessionOpen)
	if err != nil {
		return fmt.Errorf("recording %s for a webhook: %w", path, err)
	}
	recording, streaming := false, false
	if live {
		recording = sessionOpen
		if broadcast.Valid {
			if streaming, err = liveNow(ctx, tx, broadcast.Int64); err != nil {
				return err
			}
		}
	}
	room, err := s.hookRoom(ctx, tx, roomID, recording, streaming)
	if err != nil {
		return err
	}
	data := webhook.FileClosedData{
		SessionID: uuid, RelativePath: path, FileSize: end.Size, Duration: webhook.SecondsOf(end.Duration),
		FileOpenTime: webhook.Time(hookTime(time.UnixMilli(started))), FileCloseTime: webhook.Time(hookTime(time.UnixMilli(end.Ended.UnixMilli()))),
		Room: room,
	}
	return s.queueWebhook(ctx, tx, roomID, webhook.NewEvent(webhook.FileClosed, hookTime(s.opts.Now()), data))
}
