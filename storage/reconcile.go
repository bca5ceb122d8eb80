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

	"roomrec/recording/flv"
)

// partSuffix marks a file roomrec was still writing.
const partSuffix = ".part"

// ReconcileReport says what Reconcile found.
type ReconcileReport struct {
	Finalized []Recording // were writing at a crash; cut, renamed and indexed as interrupted
	Missing   []string    // indexed as writing, but no file on disk
	Unknown   []string    // video files on disk the index does not know; left alone
}

// Reconcile makes the index and the disk agree after a crash. Recordings
// still marked writing are finished: a leftover .part is cut back to its
// last whole FLV tag and renamed to its final name, so any player opens it,
// and indexed as interrupted with its real size and duration; its danmaku
// file is closed and renamed too. Video files under the recordings
// directory that the index does not know are reported, never deleted. Run
// it at start, before any recording begins.
func (s *Store) Reconcile(ctx context.Context) (ReconcileReport, error) {
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

	for _, rec := range writing {
		end, found, err := s.finalizeFile(rec)
		if err != nil {
			return report, fmt.Errorf("reconcile %s: %w", rec.Path, err)
		}
		if !found {
			report.Missing = append(report.Missing, rec.Path)
			s.log.Warn("recording was being written but its file is gone", slog.String("path", rec.Path))
		}
		err = s.write(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `
				UPDATE recordings SET size = ?, duration_ms = ?, ended_at = ?, status = 'interrupted', danmaku_path = ?
				WHERE id = ?`, end.Size, end.Duration.Milliseconds(), end.Ended.UnixMilli(), end.DanmakuPath, rec.ID)
			return err
		})
		if err != nil {
			return report, fmt.Errorf("reconcile %s: %w", rec.Path, err)
		}
		rec.Size, rec.Duration, rec.Ended, rec.Status, rec.DanmakuPath = end.Size, end.Duration, end.Ended, Interrupted, end.DanmakuPath
		if found {
			report.Finalized = append(report.Finalized, rec)
			s.log.Info("finished a recording interrupted by a crash", slog.String("path", rec.Path),
				slog.Int64("bytes", end.Size), slog.Duration("duration", end.Duration))
		}
	}

	report.Unknown, err = s.unknownFiles(ctx)
	for _, p := range report.Unknown {
		s.log.Warn("file in the recordings directory is not in the index; leaving it alone", slog.String("path", p))
	}
	return report, err
}

// finalizeFile repairs the file of a recording that was being written.
func (s *Store) finalizeFile(rec Recording) (RecordingEnd, bool, error) {
	end := RecordingEnd{Ended: s.opts.Now(), Interrupted: true}
	final, err := s.abs(rec.Path)
	if err != nil {
		return end, false, err
	}
	path := final + partSuffix
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		// Renamed before the crash, but not yet marked complete.
		path = final
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return end, false, nil
	}
	if err != nil {
		return end, false, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return end, false, err
	}
	end.Ended = info.ModTime()
	size, lastTS, err := flv.ScanComplete(f, info.Size())
	if err != nil {
		// Not even an FLV header: keep the bytes as they are for a human.
		s.log.Warn("interrupted recording is not FLV; left as it is", slog.String("path", path), slog.Any("err", err))
		size = info.Size()
	} else if size < info.Size() {
		if err := f.Truncate(size); err != nil {
			return end, false, err
		}
	}
	end.Size, end.Duration = size, time.Duration(lastTS)*time.Millisecond
	if err := f.Close(); err != nil {
		return end, false, err
	}
	if path != final {
		if err := os.Rename(path, final); err != nil {
			return end, false, err
		}
	}
	end.DanmakuPath = s.finalizeDanmaku(rec.Path)
	return end, true, nil
}

// finalizeDanmaku closes and renames the danmaku file of an interrupted
// recording, returning its path relative to the recordings directory.
func (s *Store) finalizeDanmaku(videoRel string) string {
	rel := strings.TrimSuffix(videoRel, filepath.Ext(videoRel)) + ".xml"
	final, err := s.abs(rel)
	if err != nil {
		return ""
	}
	part := final + partSuffix
	if _, err := os.Stat(part); err == nil {
		data, err := os.ReadFile(part)
		if err == nil && !strings.HasSuffix(strings.TrimSpace(string(data)), "</i>") {
			// Cut back to the last whole line, then close the document.
			if i := strings.LastIndexByte(string(data), '\n'); i >= 0 {
				data = data[:i+1]
			}
			data = append(data, "</i>\n"...)
			err = os.WriteFile(part, data, 0o644)
		}
		if err == nil {
			err = os.Rename(part, final)
		}
		if err != nil {
			s.log.Warn("danmaku of an interrupted recording not finished", slog.String("path", part), slog.Any("err", err))
			return ""
		}
	}
	if _, err := os.Stat(final); err != nil {
		return ""
	}
	return rel
}

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
		name := d.Name()
		if d.IsDir() || !(strings.HasSuffix(name, ".flv") || strings.HasSuffix(name, ".flv"+partSuffix)) {
			return nil
		}
		rel, err := filepath.Rel(s.opts.RecordingsDir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !known[strings.TrimSuffix(rel, partSuffix)] {
			unknown = append(unknown, rel)
		}
		return nil
	})
	return unknown, err
}
