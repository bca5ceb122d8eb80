package main

import (
	"log/slog"

	"roomrec/recording"
	"roomrec/storage"
)

// repairFiles is the crash repair storage.Reconcile runs on each recording
// left writing: recording owns the file formats, storage records what came
// of them.
func repairFiles(dir string, logger *slog.Logger) storage.Repair {
	return func(rel string) (storage.Repaired, error) {
		r, err := recording.Recover(dir, rel, logger)
		return storage.Repaired{Found: r.Found, Size: r.Size, Duration: r.Duration, Ended: r.Ended, DanmakuPath: r.DanmakuPath}, err
	}
}
