package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"roomrec/bilibili/bilibilitest"
	"roomrec/bot/telegram/telegramtest"
	"roomrec/storage"
)

// A file the crash check cannot repair does not keep serve from starting:
// it is left as it is and counted in /metrics, and the others are finished.
func TestServeStartsPastAnUnrepairableFile(t *testing.T) {
	dir := t.TempDir()
	recordings := filepath.Join(dir, "recordings")
	sample, err := os.ReadFile(filepath.Join("..", "..", "bilibili", "bilibilitest", "testdata", "sample_a.flv"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store, err := storage.Open(ctx, filepath.Join(dir, "roomrec.db"), storage.Options{RecordingsDir: recordings})
	if err != nil {
		t.Fatal(err)
	}
	store.CreateRecording(ctx, storage.NewRecording{RoomID: 5440, Path: "5440/bad.flv", Started: time.Now()})
	store.CreateRecording(ctx, storage.NewRecording{RoomID: 5440, Path: "5440/good.flv", Started: time.Now()})
	store.Close()
	bad := filepath.Join(recordings, "5440", "bad.flv.part")
	if err := os.MkdirAll(bad, 0o755); err != nil { // fails to open, even for root
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(recordings, "5440", "good.flv.part"), sample[:len(sample)/2], 0o644); err != nil {
		t.Fatal(err)
	}

	sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 4})
	tg := telegramtest.Start(t, testToken)
	s := runServe(t, map[string]string{
		"ROOMREC_DATA_DIR": dir, "BILIBILI_API_URL": sim.URL(),
		"TELEGRAM_BOT_TOKEN": testToken, "TELEGRAM_API_ENDPOINT": tg.Endpoint(),
	})
	var metrics string
	waitFor(t, 10*time.Second, "/metrics", func() bool {
		metrics = tryGet(s.url() + "/metrics")
		return metrics != ""
	})
	if !strings.Contains(metrics, "roomrec_unrepaired_files 1") {
		t.Errorf("/metrics does not count the unrepaired file:\n%s", metrics)
	}
	if info, err := os.Stat(bad); err != nil || !info.IsDir() {
		t.Errorf("the bad .part was not left where it was: %v", err)
	}
	if _, err := os.Stat(filepath.Join(recordings, "5440", "good.flv")); err != nil {
		t.Errorf("the good recording was not finished: %v", err)
	}
}

// tryGet returns the body of a 200 answer from url, or "" if there is none
// (yet).
func tryGet(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return ""
	}
	return string(body)
}
