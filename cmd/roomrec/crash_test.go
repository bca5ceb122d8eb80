package main

import (
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"roomrec/bilibili/bilibilitest"
	"roomrec/bot/telegram/telegramtest"
)

// TestCrashAndRestart kills a real roomrec process with SIGKILL in the
// middle of a recording, starts it again on the same data, and checks that
// the interrupted file is finished, playable and in the archive, and that
// recording resumes; then SIGTERM finishes everything within 10 s.
func TestCrashAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real binary")
	}
	sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 4})
	room := sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, Anchor: "主播", Title: "今晚打游戏"})
	tg := telegramtest.Start(t, testToken)
	dir := t.TempDir()
	roomDir := filepath.Join(dir, "recordings", "5440")
	start := serveChild(t, sim, tg, dir)
	const me = 77 // a private chat: its user is its admin
	askPrivate := func(text, want string) {
		t.Helper()
		before := len(tg.Calls())
		tg.Command(me, "private", me, text)
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			for _, c := range tg.Calls()[before:] {
				if c.ReplyTo != 0 {
					if !strings.Contains(c.Text, want) {
						t.Fatalf("%s: reply %q, want %q", text, c.Text, want)
					}
					return
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("%s: no reply", text)
	}
	partSize := func() int64 { return onlyFileSize(filepath.Join(roomDir, "*.flv.part")) }

	first := start()
	askPrivate("/record 5440", "Recording 主播")
	waitFor(t, 10*time.Second, "danmaku connection", func() bool { return sim.DanmakuConnections(5440) == 1 })
	room.GoLive()
	waitFor(t, 10*time.Second, "a growing recording", func() bool { return partSize() > 200<<10 })
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	parts, _ := filepath.Glob(filepath.Join(roomDir, "*.flv.part"))
	if len(parts) != 1 {
		t.Fatalf("after kill -9: %d .part files, want the one being written", len(parts))
	}
	crashed := strings.TrimSuffix(parts[0], ".part")

	second := start()
	restarted := time.Now()
	waitFor(t, 10*time.Second, "the interrupted file finished", func() bool { _, err := os.Stat(crashed); return err == nil })
	waitFor(t, 10*time.Second, "recording to resume", func() bool { return partSize() > 0 })
	t.Logf("recording resumed %s after the restart", time.Since(restarted).Round(10*time.Millisecond))
	if _, err := exec.LookPath("ffprobe"); err == nil {
		if out, err := exec.Command("ffprobe", "-v", "error", crashed).CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("ffprobe of the file cut by kill -9: %v %s", err, out)
		}
	}
	askPrivate("/archive", "2 recordings")
	askPrivate("/archive", "interrupted")
	if n := strings.Count(callsText(tg), "is live"); n != 1 {
		t.Errorf("%d alerts, want 1: the restart must not alert again", n)
	}

	terminateWithin(t, second, roomDir)
}

func callsText(tg *telegramtest.Server) string {
	var b strings.Builder
	for _, c := range tg.Calls() {
		b.WriteString(c.Text)
		b.WriteByte('\n')
	}
	return b.String()
}

// TestCrashMidMP4AndRestart is TestCrashAndRestart for a fragmented MP4:
// the room offers HEVC only, so ROOMREC_CONTAINER=auto writes .mp4. After
// kill -9 the .part is left with a fragment torn part way (if the kill
// happened to land between two fragments, the test tears the last one as
// a kill during its write would); the next start must cut the file back to
// exactly the end of its last whole fragment, rename it, index it as
// interrupted with the duration the file really has, and resume. Any word
// from ffprobe on the repaired file (a torn fragment left in) fails it.
func TestCrashMidMP4AndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real binary")
	}
	sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 4})
	room := sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, Anchor: "主播", Title: "HEVC 测试"})
	offer, err := bilibilitest.ParseOffer("fmp4/hevc")
	if err != nil {
		t.Fatal(err)
	}
	room.SetOffer(offer)
	tg := telegramtest.Start(t, testToken)
	dir := t.TempDir()
	roomDir := filepath.Join(dir, "recordings", "5440")
	start := serveChild(t, sim, tg, dir, "ROOMREC_CONTAINER=auto")
	const me = 77
	askPrivate := func(text string) string {
		t.Helper()
		before := len(tg.Calls())
		tg.Command(me, "private", me, text)
		return replyTo(t, tg, before).Text
	}
	partSize := func() int64 { return onlyFileSize(filepath.Join(roomDir, "*.mp4.part")) }

	first := start()
	if r := askPrivate("/record 5440"); !strings.Contains(r, "Recording 主播") {
		t.Fatalf("/record = %q", r)
	}
	waitFor(t, 10*time.Second, "danmaku connection", func() bool { return sim.DanmakuConnections(5440) == 1 })
	room.GoLive()
	waitFor(t, 15*time.Second, "a growing .mp4 recording", func() bool { return partSize() > 150<<10 })
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	parts, _ := filepath.Glob(filepath.Join(roomDir, "*.mp4.part"))
	if len(parts) != 1 {
		t.Fatalf("after kill -9: %d .mp4.part files, want the one being written", len(parts))
	}
	part := parts[0]
	crashed := strings.TrimSuffix(part, ".part")

	ends, size := fragmentEnds(t, part)
	if len(ends) < 2 {
		t.Fatalf("the killed file has %d whole fragments, want several", len(ends))
	}
	want := ends[len(ends)-1]
	if want == size {
		// Killed between two writes: tear the last fragment half way
		// through its mdat, as a kill inside its write would.
		want = ends[len(ends)-2]
		if err := os.Truncate(part, want+(size-want)/2); err != nil {
			t.Fatal(err)
		}
		t.Logf("kill -9 left %d bytes on a fragment boundary; tore the last fragment at %d", size, want+(size-want)/2)
	} else {
		t.Logf("kill -9 left %d bytes, %d of them a torn fragment", size, size-want)
	}

	second := start()
	restarted := time.Now()
	waitFor(t, 10*time.Second, "the interrupted file finished", func() bool { _, err := os.Stat(crashed); return err == nil })
	waitFor(t, 10*time.Second, "recording to resume", func() bool { return partSize() > 0 })
	t.Logf("recording resumed %s after the restart", time.Since(restarted).Round(10*time.Millisecond))
	fi, err := os.Stat(crashed)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != want {
		t.Errorf("repaired file is %d bytes, want %d: cut at the end of the last whole fragment", fi.Size(), want)
	}
	if r := askPrivate("/archive"); !strings.Contains(r, "2 recordings") || !strings.Contains(r, "[interrupted]") {
		t.Errorf("/archive = %q, want the interrupted file and the resumed one", r)
	}
	rel, _ := filepath.Rel(filepath.Join(dir, "recordings"), crashed)
	status, indexed := archivedRecording(t, dir, filepath.ToSlash(rel))
	if status != "interrupted" {
		t.Errorf("the repaired file is indexed as %q, want interrupted", status)
	}
	if p, ok := probeClean(t, crashed); ok {
		if got := p.sortedCodecs(); got != "aac,hevc" {
			t.Errorf("repaired file holds %s, want hevc and aac", got)
		}
		t.Logf("repaired file: %d bytes, ffprobe %s, archive %s", want, p.Duration, indexed)
		if d := p.Duration - indexed; d < -time.Second || d > time.Second {
			t.Errorf("ffprobe reads %s of media, the archive says %s", p.Duration, indexed)
		}
	}

	terminateWithin(t, second, roomDir)
	files, _ := filepath.Glob(filepath.Join(roomDir, "*.mp4"))
	if len(files) != 2 {
		t.Fatalf("finished .mp4 files %q, want the repaired one and the resumed one", files)
	}
	for _, f := range files {
		if f != crashed {
			probeClean(t, f)
		}
	}
}

// archivedRecording reads a recording's status and duration from the
// database a roomrec process keeps in dir.
func archivedRecording(t *testing.T, dir, rel string) (string, time.Duration) {
	t.Helper()
	db, err := sql.Open("sqlite3", filepath.Join(dir, "roomrec.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var status string
	var ms int64
	if err := db.QueryRow(`SELECT status, duration_ms FROM recordings WHERE path = ?`, rel).Scan(&status, &ms); err != nil {
		t.Fatalf("recording %s in the index: %v", rel, err)
	}
	return status, time.Duration(ms) * time.Millisecond
}

// serveChild builds roomrec and returns what starts it as `roomrec serve`,
// a child process on dir with the Telegram bot at tg, env added; each
// process is killed at the end of the test if still running.
func serveChild(t *testing.T, sim *bilibilitest.Server, tg *telegramtest.Server, dir string, env ...string) func() *exec.Cmd {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "roomrec")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return func() *exec.Cmd {
		cmd := exec.Command(bin, "serve")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "ROOMREC_DATA_DIR="+dir, "BILIBILI_API_URL="+sim.URL(), "ROOMREC_HTTP_ADDR=127.0.0.1:0", "ROOMREC_MIN_FREE_MB=0",
			"TELEGRAM_BOT_TOKEN="+testToken, "TELEGRAM_API_ENDPOINT="+tg.Endpoint(), "ROOMREC_LOG_LEVEL=warn")
		cmd.Env = append(cmd.Env, env...)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
}

// onlyFileSize is the size of the one file matching pattern; 0 when there
// is none, or more than one.
func onlyFileSize(pattern string) int64 {
	paths, _ := filepath.Glob(pattern)
	if len(paths) != 1 {
		return 0
	}
	fi, err := os.Stat(paths[0])
	if err != nil {
		return 0
	}
	return fi.Size()
}

// terminateWithin sends roomrec SIGTERM and checks that it exits cleanly
// within 10 s, leaving no file in dir unfinished.
func terminateWithin(t *testing.T, cmd *exec.Cmd, dir string) {
	t.Helper()
	cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("roomrec exited with %v after SIGTERM", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("roomrec did not finish within 10 s of SIGTERM")
	}
	if parts, _ := filepath.Glob(filepath.Join(dir, "*.part")); len(parts) != 0 {
		t.Errorf("files left unfinished after SIGTERM: %q", parts)
	}
}
