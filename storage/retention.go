package storage

import (
	"context"
	"fmt"
	"time"
)

// Retention limits a chat's archive. Zero fields are no limit.
type Retention struct {
	MaxAge   time.Duration // recordings older than this leave the archive
	MaxBytes int64         // beyond this total, the oldest recordings leave
}

// Pruned is what ApplyRetention removed from one chat's archive.
type Pruned struct {
	Chat       Chat
	Recordings []Recording // left the archive
	Freed      int64       // bytes removed from disk (files no chat keeps any more)
}

// ApplyRetention trims every chat's archive to r: recordings started before
// now-MaxAge, then the oldest ones past MaxBytes, leave that chat's archive.
// As with /archive delete, a file is removed from disk only when no chat
// keeps it. Recordings still being written are never touched. It returns
// what it removed, per chat, so the chats can be told.
func (s *Store) ApplyRetention(ctx context.Context, r Retention) ([]Pruned, error) {
	if r.MaxAge <= 0 && r.MaxBytes <= 0 {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT c.id, c.platform, c.platform_id, c.title FROM archive a JOIN chats c ON c.id = a.chat_id`)
	if err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	var chats []Chat
	for rows.Next() {
		var c Chat
		if err := rows.Scan(&c.ID, &c.Platform, &c.PlatformID, &c.Title); err != nil {
			rows.Close()
			return nil, err
		}
		chats = append(chats, c)
	}
	rows.Close()
	var out []Pruned
	for _, c := range chats {
		doomed, err := s.overRetention(ctx, c.ID, r)
		if err != nil {
			return out, err
		}
		if len(doomed) == 0 {
			continue
		}
		p := Pruned{Chat: c}
		for _, rec := range doomed {
			removed, err := s.DeleteFromArchive(ctx, c.ID, rec.ID)
			if err != nil {
				return out, err
			}
			p.Recordings = append(p.Recordings, rec)
			if removed {
				p.Freed += rec.Size
			}
		}
		out = append(out, p)
	}
	return out, nil
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
