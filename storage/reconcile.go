package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"roomrec"
	"roomrec/recording"
)

// ReconcileReport says what Reconcile found.
type ReconcileReport struct {
	Finalized  []Recording // were writing at a crash; repaired and indexed as interrupted
	Missing    []string    // indexed as writing, but no file on disk
	Unrepaired []string    // indexed as writing, but the repair failed; left as they are, still writing
	Unknown    []string    // video files on disk the index does not know; left alone
}

// Repair finishes the file of a recording that was being written when
// roomrec stopped, given its path relative to the recordings directory.
// It reports Found false if no file is left, and an error if the file is
// there but could not be finished. recording.Recover does this work (it
// owns the formats); storage only records the outcome.
type Repair func(rel string) (Repaired, error)

// Repaired is what a Repair made of a recording's file.
type Repaired struct {
	Found       bool
	Size        int64
	Duration    time.Duration
	Ended       time.Time
	DanmakuPath string
}

// Reconcile makes the index and the disk agree after a crash. Each
// recording still marked writing has its file finished by repair and is
// indexed as interrupted with the size and duration repair found, or with
// nothing if its file is gone. A file repair fails on is logged, counted
// in Unrepaired (see Store.Unrepaired) and left as it is, its recording
// still writing so a later start tries again; the rest go on. Video files
// under the recordings directory that the index does not know are
// reported, never deleted. Each file finished queues the webhook event
// FileClosed; then every recording session left open by the crash ends
// (SessionEnded). Run it at start, before any recording begins, after
// RegisterWebhooks. It returns an error only if the database fails.
func (s *Store) Reconcile(ctx context.Context, repair Repair) (ReconcileReport, error) {
	var report ReconcileReport
	rows, err := s.db.QueryContext(ctx, `SELECT `+recordingColumns+` FROM recordings r WHERE r.status = 'writing'`)
	if err != nil {
		return report, fmt.Errorf("reconcile: %w", err)
	}
	var writing []Recording
	for rows.Next() {
		rec, err := scanRecording(rows)
		if err != nil {
			rows.Close()
			return report, err
		}
		writing = append(writing, rec)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return report, err
	}
	defer func() { s.unrepaired.Store(int64(len(report.Unrepaired))) }()

	for _, rec := range writing {
		got, err := repair(rec.Path)
		if err != nil {
			report.Unrepaired = append(report.Unrepaired, rec.Path)
			s.log.Error("interrupted recording could not be repaired; left as it is", slog.String(roomrec.KeyPath, rec.Path), roomrec.LogErr(err))
			continue
		}
		end := RecordingEnd{Size: got.Size, Duration: got.Duration, Ended: got.Ended, DanmakuPath: got.DanmakuPath, Interrupted: true}
		if !got.Found {
			end = RecordingEnd{Ended: s.opts.Now(), Interrupted: true}
			report.Missing = append(report.Missing, rec.Path)
			s.log.Warn("recording was being written but its file is gone", slog.String(roomrec.KeyPath, rec.Path))
		}
		err = s.write(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `
				UPDATE recordings SET size = ?, duration_ms = ?, ended_at = ?, status = 'interrupted', danmaku_path = ?
				WHERE id = ?`, end.Size, end.Duration.Milliseconds(), end.Ended.UnixMilli(), end.DanmakuPath, rec.ID)
			if err != nil || !got.Found {
				return err
			}
			// Finished on disk only now: the webhooks hear of it now.
			return s.fileClosed(ctx, tx, rec.Path, end, false)
		})
		if err != nil {
			return report, fmt.Errorf("reconcile %s: %w", rec.Path, err)
		}
		rec.Size, rec.Duration, rec.Ended, rec.Status, rec.DanmakuPath = end.Size, end.Duration, end.Ended, Interrupted, end.DanmakuPath
		if got.Found {
			report.Finalized = append(report.Finalized, rec)
			s.log.Info("finished a recording interrupted by a crash", slog.String(roomrec.KeyPath, rec.Path),
				slog.Int64(roomrec.KeyBytes, end.Size), slog.Duration(roomrec.KeyDuration, end.Duration))
		}
	}

	// Every recording session still open was cut by the crash; its files
	// are finished above.
	if err := s.write(ctx, func(tx *sql.Tx) error { return s.endRecordingSessionsWhere(ctx, tx, `1`, nil, false) }); err != nil {
		return report, fmt.Errorf("reconcile recording sessions: %w", err)
	}

	report.Unknown, err = s.unknownFiles(ctx)
	for _, p := range report.Unknown {
		s.log.Warn("file in the recordings directory is not in the index; leaving it alone", slog.String(roomrec.KeyPath, p))
	}
	return report, err
}

// Unrepaired returns how many files the last Reconcile could not repair.
func (s *Store) Unrepaired() int { return int(s.unrepaired.Load()) }

// unknownFiles lists video files under the recordings directory that the
// index does not know.
func (s *Store) unknownFiles(ctx context.Context) ([]string, error) {
	if s.opts.RecordingsDir == "" {
		return nil, nil
	}
	known := map[string]bool{}
	rows, err := s.db.QueryContext(ctx, `SELECT path FROM recordings`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return nil, err
		}
		known[p] = true
	}
	rows.Close()
	var unknown []string
	err = filepath.WalkDir(s.opts.RecordingsDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || !recording.IsVideo(strings.TrimSuffix(d.Name(), recording.PartSuffix)) {
			return nil
		}
		rel, err := filepath.Rel(s.opts.RecordingsDir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !known[strings.TrimSuffix(rel, recording.PartSuffix)] {
			unknown = append(unknown, rel)
		}
		return nil
	})
	return unknown, err
}
