package storage

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"roomrec/recording"
)

// recoverFiles is the repair serve runs: recording.Recover on the store's
// recordings directory.
func recoverFiles(dir string) Repair {
	return func(rel string) (Repaired, error) {
		r, err := recording.Recover(filepath.Join(dir, "recordings"), rel, nil)
		return Repaired{Found: r.Found, Size: r.Size, Duration: r.Duration, Ended: r.Ended, DanmakuPath: r.DanmakuPath}, err
	}
}

// One file the crash check cannot read must not keep roomrec from
// starting, nor the other interrupted recordings from being finished.
func TestReconcileKeepsGoingPastAnUnrepairableFile(t *testing.T) {
	s, dir := openTest(t)
	ctx := context.Background()
	sample, err := os.ReadFile(filepath.Join("..", "bilibili", "bilibilitest", "testdata", "sample_a.flv"))
	if err != nil {
		t.Fatal(err)
	}
	// A directory where the .part should be fails to open even for root.
	s.CreateRecording(ctx, NewRecording{RoomID: 5440, Path: "5440/bad.flv", Started: time.Now()})
	bad := filepath.Join(dir, "recordings", "5440", "bad.flv.part")
	if err := os.MkdirAll(bad, 0o755); err != nil {
		t.Fatal(err)
	}
	s.CreateRecording(ctx, NewRecording{RoomID: 5440, Path: "5440/good.flv", Started: time.Now()})
	writeFile(t, dir, "5440/good.flv.part", sample[:len(sample)/2+3])

	report, err := s.Reconcile(ctx, recoverFiles(dir))
	if err != nil {
		t.Fatalf("Reconcile = %v, want start-up to go on past a bad file", err)
	}
	if len(report.Finalized) != 1 || report.Finalized[0].Path != "5440/good.flv" {
		t.Errorf("finalized = %+v, want the good one", report.Finalized)
	}
	if !slices.Equal(report.Unrepaired, []string{"5440/bad.flv"}) || s.Unrepaired() != 1 {
		t.Errorf("unrepaired = %q (counted %d), want the bad one", report.Unrepaired, s.Unrepaired())
	}
	if info, err := os.Stat(bad); err != nil || !info.IsDir() {
		t.Errorf("the bad .part was not kept where it was: %v", err)
	}
	if rec, _ := s.RecordingByPath(ctx, "5440/bad.flv"); rec.Status != Writing {
		t.Errorf("bad recording is %s, want still writing so a later start tries again", rec.Status)
	}
	if rec, _ := s.RecordingByPath(ctx, "5440/good.flv"); rec.Status != Interrupted || rec.Size == 0 || rec.Size >= int64(len(sample)/2+3) {
		t.Errorf("good recording = %+v, want interrupted and cut", rec)
	}
	if _, err := os.Stat(filepath.Join(dir, "recordings", "5440", "good.flv")); err != nil {
		t.Errorf("good recording not renamed: %v", err)
	}

	// Once the bad file is out of the way, the next start finishes the
	// recording (as gone) and the count drops.
	os.Remove(bad)
	report, err = s.Reconcile(ctx, recoverFiles(dir))
	if err != nil || !slices.Equal(report.Missing, []string{"5440/bad.flv"}) || s.Unrepaired() != 0 {
		t.Errorf("second reconcile = %+v, %v (unrepaired %d), want the bad one missing", report, err, s.Unrepaired())
	}
}

// Recordings may be .mp4 as well as .flv: the start-up scan reports
// either when the index does not know it.
func TestReconcileReportsUnknownMP4(t *testing.T) {
	s, dir := openTest(t)
	writeFile(t, dir, "5440/stranger.mp4", []byte("mp4"))
	writeFile(t, dir, "5440/half.mp4.part", []byte("mp4"))
	writeFile(t, dir, "5440/stranger.webp", []byte("cover"))
	report, err := s.Reconcile(context.Background(), recoverFiles(dir))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(report.Unknown)
	if want := []string{"5440/half.mp4.part", "5440/stranger.mp4"}; !slices.Equal(report.Unknown, want) {
		t.Errorf("unknown = %q, want %q", report.Unknown, want)
	}
}

// Deleting a recording removes every file beside it, whatever extension
// its cover was saved with.
func TestDeleteRemovesEverySideFile(t *testing.T) {
	s, dir := openTest(t)
	ctx := context.Background()
	chat, _ := s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "a"})
	s.Subscribe(ctx, chat.ID, Room{RoomID: 5440}, Record, "")
	rec, err := s.CreateRecording(ctx, NewRecording{RoomID: 5440, Path: "5440/x.flv", Started: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	files := []string{
		writeFile(t, dir, "5440/x.flv", []byte("FLV")),
		writeFile(t, dir, "5440/x.xml", []byte("<i/>")),
		writeFile(t, dir, "5440/x.webp", []byte("webp")),
		writeFile(t, dir, "5440/x.png", []byte("png")),
		writeFile(t, dir, "5440/x.jpg.part", []byte("half a cover")),
	}
	other := writeFile(t, dir, "5440/x2.webp", []byte("another recording's cover"))
	if err := s.CompleteRecording(ctx, "5440/x.flv", RecordingEnd{Size: 3, Ended: time.Now(), DanmakuPath: "5440/x.xml"}); err != nil {
		t.Fatal(err)
	}
	if removed, err := s.DeleteFromArchive(ctx, chat.ID, rec.ID); err != nil || !removed {
		t.Fatalf("delete = %v, %v", removed, err)
	}
	for _, f := range files {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s left behind after delete", filepath.Base(f))
		}
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another recording's cover went too: %v", err)
	}
}
