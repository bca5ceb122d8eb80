package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"roomrec/recording"
)

// ArchiveQuery selects a page of a chat's archive.
type ArchiveQuery struct {
	RoomID int64 // 0 = every room
	Limit  int   // default 10, at most 100
	Offset int
}

// ArchivePage is a page of a chat's archive, newest first, with totals over
// the whole (filtered) archive.
type ArchivePage struct {
	Items         []Recording
	Total         int
	TotalBytes    int64
	TotalDuration time.Duration
}

// Archive returns a page of a chat's archive, newest first.
func (s *Store) Archive(ctx context.Context, chatID int64, q ArchiveQuery) (ArchivePage, error) {
	if q.Limit <= 0 {
		q.Limit = 10
	}
	q.Limit = min(q.Limit, 100)
	q.Offset = max(q.Offset, 0)
	filter, args := `a.chat_id = ?`, []any{chatID}
	if q.RoomID != 0 {
		filter, args = filter+` AND a.room_id = ?`, append(args, q.RoomID)
	}
	var page ArchivePage
	var durMs int64
	err := s.db.QueryRowContext(ctx, `
		SELECT count(*), coalesce(sum(r.size), 0), coalesce(sum(r.duration_ms), 0)
		FROM archive a JOIN recordings r ON r.id = a.recording_id WHERE `+filter, args...).Scan(&page.Total, &page.TotalBytes, &durMs)
	if err != nil {
		return ArchivePage{}, fmt.Errorf("archive totals of chat %d: %w", chatID, err)
	}
	page.TotalDuration = time.Duration(durMs) * time.Millisecond
	rows, err := s.db.QueryContext(ctx, `
		SELECT `+recordingColumns+` FROM archive a JOIN recordings r ON r.id = a.recording_id
		WHERE `+filter+` ORDER BY a.started_at DESC, a.recording_id DESC LIMIT ? OFFSET ?`,
		append(args, q.Limit, q.Offset)...)
	if err != nil {
		return ArchivePage{}, fmt.Errorf("archive of chat %d: %w", chatID, err)
	}
	defer rows.Close()
	for rows.Next() {
		rec, err := scanRecording(rows)
		if err != nil {
			return ArchivePage{}, err
		}
		page.Items = append(page.Items, rec)
	}
	return page, rows.Err()
}

// ArchiveItem returns a recording in a chat's archive. A recording that
// exists but is not in this chat's archive is not found, exactly like one
// that does not exist, so ids reveal nothing about other chats.
func (s *Store) ArchiveItem(ctx context.Context, chatID, recordingID int64) (Recording, error) {
	rec, err := scanRecording(s.db.QueryRowContext(ctx, `
		SELECT `+recordingColumns+` FROM archive a JOIN recordings r ON r.id = a.recording_id
		WHERE a.chat_id = ? AND a.recording_id = ?`, chatID, recordingID))
	if errors.Is(err, sql.ErrNoRows) {
		return Recording{}, notFound("There is no recording %d in this chat's archive.", recordingID)
	}
	return rec, err
}

// DeleteFromArchive removes a recording from a chat's archive. When no chat
// keeps it any more and it is finished, its files are removed from disk and
// it is marked deleted; fileRemoved says so. A recording still being
// written keeps its file until a later delete. It returns an error wrapping
// ErrNotFound if the recording is not in this chat's archive.
func (s *Store) DeleteFromArchive(ctx context.Context, chatID, recordingID int64) (fileRemoved bool, err error) {
	var rec Recording
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM archive WHERE chat_id = ? AND recording_id = ?`, chatID, recordingID)
		if err := changedOne(res, err, "There is no recording %d in this chat's archive.", recordingID); err != nil {
			return err
		}
		var keepers int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM archive WHERE recording_id = ?`, recordingID).Scan(&keepers); err != nil {
			return err
		}
		if keepers > 0 {
			return nil
		}
		rec, err = scanRecording(tx.QueryRowContext(ctx, `SELECT `+recordingColumns+` FROM recordings r WHERE r.id = ?`, recordingID))
		if err != nil || rec.Status == Writing {
			rec = Recording{}
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE recordings SET status = 'deleted' WHERE id = ?`, recordingID)
		return err
	})
	if err != nil || rec.Path == "" {
		return false, err
	}
	// After commit: a failed removal leaves a file the index calls
	// deleted, which the start-up scan reports; the reverse (a file gone
	// that the index still lists) would be worse.
	if err := s.removeFiles(rec); err != nil {
		s.log.Warn("recording deleted from the index but not from disk", "path", rec.Path, "err", err)
		return false, nil
	}
	return true, nil
}

// removeFiles removes a recording's video and every file beside it
// (recording.SideFiles: danmaku, covers), with any .part leftover of each.
func (s *Store) removeFiles(rec Recording) error {
	video, err := s.abs(rec.Path)
	if err != nil {
		return err
	}
	paths := []string{video}
	for _, p := range recording.SideFiles(video) {
		paths = append(paths, p, p+recording.PartSuffix)
	}
	if rec.DanmakuPath != "" {
		if d, err := s.abs(rec.DanmakuPath); err == nil {
			paths = append(paths, d)
		}
	}
	var first error
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) && first == nil {
			first = err
		}
	}
	return first
}

// abs resolves a path from the index inside the recordings directory,
// refusing one that would leave it.
func (s *Store) abs(rel string) (string, error) {
	if s.opts.RecordingsDir == "" {
		return "", errors.New("no recordings directory configured")
	}
	if !filepath.IsLocal(filepath.FromSlash(rel)) {
		return "", fmt.Errorf("path %q leaves the recordings directory", rel)
	}
	return filepath.Join(s.opts.RecordingsDir, filepath.FromSlash(rel)), nil
}
