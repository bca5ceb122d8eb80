package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Retention limits a chat's archive. Zero fields are no limit.
type Retention struct {
	MaxAge   time.Duration // recordings older than this leave the archive
	MaxBytes int64         // beyond this total, the oldest recordings leave
}

// IsZero reports whether r limits nothing.
func (r Retention) IsZero() bool { return r.MaxAge <= 0 && r.MaxBytes <= 0 }

// Tighter returns the stricter of r and o in each limit: a chat may keep
// less than the server allows, never more.
func (r Retention) Tighter(o Retention) Retention {
	if o.MaxAge > 0 && (r.MaxAge <= 0 || o.MaxAge < r.MaxAge) {
		r.MaxAge = o.MaxAge
	}
	if o.MaxBytes > 0 && (r.MaxBytes <= 0 || o.MaxBytes < r.MaxBytes) {
		r.MaxBytes = o.MaxBytes
	}
	return r
}

// day is the unit a chat's age limit is kept in.
const day = 24 * time.Hour

// ChatRetention returns the chat's own policy; zero when it has none.
func (s *Store) ChatRetention(ctx context.Context, chatID int64) (Retention, error) {
	var days, bytes sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT keep_days, keep_bytes FROM chats WHERE id = ?`, chatID).Scan(&days, &bytes)
	if errors.Is(err, sql.ErrNoRows) {
		return Retention{}, notFound("Chat %d: not found.", chatID)
	}
	if err != nil {
		return Retention{}, fmt.Errorf("chat retention: %w", err)
	}
	return chatRetention(days, bytes), nil
}

// chatRetention is a chat's policy from its keep_days and keep_bytes.
func chatRetention(days, bytes sql.NullInt64) Retention {
	return Retention{MaxAge: time.Duration(days.Int64) * day, MaxBytes: bytes.Int64}
}

// SetChatRetention replaces the chat's own policy; a zero r removes it.
// The age limit is kept in whole days, rounded up.
func (s *Store) SetChatRetention(ctx context.Context, chatID int64, r Retention) error {
	var days, bytes sql.NullInt64
	if r.MaxAge > 0 {
		days = sql.NullInt64{Int64: int64((r.MaxAge + day - 1) / day), Valid: true}
	}
	if r.MaxBytes > 0 {
		bytes = sql.NullInt64{Int64: r.MaxBytes, Valid: true}
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE chats SET keep_days = ?, keep_bytes = ? WHERE id = ?`, days, bytes, chatID)
		return changedOne(res, err, "Chat %d: not found.", chatID)
	})
	if err != nil {
		return fmt.Errorf("set chat retention: %w", err)
	}
	return nil
}

// Pruned is what ApplyRetention removed from one chat's archive.
type Pruned struct {
	Chat       Chat
	Recordings []Recording // left the archive
	Freed      int64       // bytes removed from disk (files no chat keeps any more)
}

// ApplyRetention trims every chat's archive to the tighter of the server's
// policy and the chat's own: recordings started before now-MaxAge, then the
// oldest ones past MaxBytes, leave that chat's archive. As with /archive
// delete, a file is removed from disk only when no chat keeps it.
// Recordings still being written are never touched. It returns what it
// removed, per chat, so the chats can be told.
func (s *Store) ApplyRetention(ctx context.Context, server Retention) ([]Pruned, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT c.id, c.platform, c.platform_id, c.title, c.keep_days, c.keep_bytes FROM chats c
		WHERE EXISTS (SELECT 1 FROM archive a WHERE a.chat_id = c.id)`)
	if err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	type chatPolicy struct {
		chat Chat
		keep Retention
	}
	var chats []chatPolicy
	for rows.Next() {
		var c Chat
		var days, bytes sql.NullInt64
		if err := rows.Scan(&c.ID, &c.Platform, &c.PlatformID, &c.Title, &days, &bytes); err != nil {
			rows.Close()
			return nil, fmt.Errorf("retention: %w", err)
		}
		chats = append(chats, chatPolicy{c, server.Tighter(chatRetention(days, bytes))})
	}
	rows.Close()
	var out []Pruned
	for _, c := range chats {
		p, err := s.prune(ctx, c.chat, c.keep)
		if err != nil {
			return out, err
		}
		if len(p.Recordings) > 0 {
			out = append(out, p)
		}
	}
	return out, nil
}

// ApplyChatRetention trims one chat's archive as ApplyRetention does, at
// once, for a chat that has just changed its policy.
func (s *Store) ApplyChatRetention(ctx context.Context, chat Chat, server Retention) (Pruned, error) {
	own, err := s.ChatRetention(ctx, chat.ID)
	if err != nil {
		return Pruned{Chat: chat}, err
	}
	return s.prune(ctx, chat, server.Tighter(own))
}

// prune removes from the chat's archive what r says must go.
func (s *Store) prune(ctx context.Context, c Chat, r Retention) (Pruned, error) {
	p := Pruned{Chat: c}
	if r.IsZero() {
		return p, nil
	}
	doomed, err := s.overRetention(ctx, c.ID, r)
	if err != nil {
		return p, fmt.Errorf("retention: %w", err)
	}
	for _, rec := range doomed {
		removed, err := s.DeleteFromArchive(ctx, c.ID, rec.ID)
		if errors.Is(err, ErrNotFound) {
			continue // an admin deleted it meanwhile
		}
		if err != nil {
			return p, err
		}
		p.Recordings = append(p.Recordings, rec)
		if removed {
			p.Freed += rec.Size
		}
	}
	return p, nil
}

// overRetention lists a chat's finished recordings that r says must go,
// oldest first.
func (s *Store) overRetention(ctx context.Context, chatID int64, r Retention) ([]Recording, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT `+recordingColumns+` FROM archive a JOIN recordings r ON r.id = a.recording_id
		WHERE a.chat_id = ? ORDER BY a.started_at DESC, a.recording_id DESC`, chatID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cutoff := time.Time{}
	if r.MaxAge > 0 {
		cutoff = s.opts.Now().Add(-r.MaxAge)
	}
	var kept int64
	var doomed []Recording
	for rows.Next() {
		rec, err := scanRecording(rows)
		if err != nil {
			return nil, err
		}
		if rec.Status == Writing {
			continue
		}
		kept += rec.Size
		if (!cutoff.IsZero() && rec.Started.Before(cutoff)) || (r.MaxBytes > 0 && kept > r.MaxBytes) {
			doomed = append([]Recording{rec}, doomed...)
		}
	}
	return doomed, rows.Err()
}
