package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Platform is the chat service a chat is on.
type Platform string

// Platforms a chat can be on.
const (
	Telegram Platform = "telegram"
	Discord  Platform = "discord"
	Console  Platform = "console"
)

// Chat is a place commands come from and alerts go to.
type Chat struct {
	ID         int64
	Platform   Platform
	PlatformID string
	Title      string
}

// EnsureChat returns the chat with c's platform and platform id, creating
// it if needed and updating its title if it changed. An empty title (a
// platform that sends none with a command) keeps the known one.
func (s *Store) EnsureChat(ctx context.Context, c Chat) (Chat, error) {
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		c.ID, err = ensureChat(ctx, tx, c, s.now())
		return err
	})
	if err != nil {
		return Chat{}, fmt.Errorf("ensure chat %s/%s: %w", c.Platform, c.PlatformID, err)
	}
	return c, nil
}

func ensureChat(ctx context.Context, tx *sql.Tx, c Chat, now int64) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `
		INSERT INTO chats (platform, platform_id, title, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (platform, platform_id) DO UPDATE SET title = coalesce(nullif(excluded.title, ''), chats.title)
		RETURNING id`, c.Platform, c.PlatformID, c.Title, now).Scan(&id)
	return id, err
}

// MigrateChat moves a chat to a new platform id, as when a Telegram group
// becomes a supergroup. Its subscriptions, alerts and archive follow. If a
// chat with the new id exists already (a message from the supergroup came
// first), the two are merged into it, the old one's rules coming along with
// its subscriptions. Migrating an unknown chat does
// nothing.
func (s *Store) MigrateChat(ctx context.Context, platform Platform, oldID, newID string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		var from, to int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM chats WHERE platform = ? AND platform_id = ?`, platform, oldID).Scan(&from)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		err = tx.QueryRowContext(ctx, `SELECT id FROM chats WHERE platform = ? AND platform_id = ?`, platform, newID).Scan(&to)
		if errors.Is(err, sql.ErrNoRows) {
			_, err = tx.ExecContext(ctx, `UPDATE chats SET platform_id = ? WHERE id = ?`, newID, from)
			return err
		}
		if err != nil {
			return err
		}
		// Merge: the new chat keeps what it has and gains the old one's.
		for _, q := range []string{
			`INSERT OR IGNORE INTO subscriptions (chat_id, room_id, mode, added_by, created_at, updated_at, hours_from, hours_to, skip)
			 SELECT ?, room_id, mode, added_by, created_at, updated_at, hours_from, hours_to, skip FROM subscriptions WHERE chat_id = ?`,
			`INSERT OR IGNORE INTO alerts (session_id, chat_id, message_id, sent_at)
			 SELECT session_id, ?, message_id, sent_at FROM alerts WHERE chat_id = ?`,
			`INSERT OR IGNORE INTO archive (chat_id, recording_id, started_at, room_id)
			 SELECT ?, recording_id, started_at, room_id FROM archive WHERE chat_id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, to, from); err != nil {
				return err
			}
		}
		// The old chat's retention policy carries over where the new one
		// has none.
		if _, err := tx.ExecContext(ctx, `
			UPDATE chats SET
				keep_days = COALESCE(keep_days, (SELECT keep_days FROM chats WHERE id = ?)),
				keep_bytes = COALESCE(keep_bytes, (SELECT keep_bytes FROM chats WHERE id = ?))
			WHERE id = ?`, from, from, to); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM chats WHERE id = ?`, from)
		return err
	})
	if err != nil {
		return fmt.Errorf("migrate chat %s/%s to %s: %w", platform, oldID, newID, err)
	}
	return nil
}
