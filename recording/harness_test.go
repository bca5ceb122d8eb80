package recording_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"roomrec/bilibili"
	"roomrec/bilibili/bilibilitest"
	"roomrec/recording"
)

// testRoom is the room every recording test drives.
const testRoom = 5440

// harness runs a Manager against the simulator with a temp recordings dir.
type harness struct {
	t      testing.TB
	sim    *bilibilitest.Server
	room   *bilibilitest.Room
	mgr    *recording.Manager
	dir    string
	events *eventLog
}

type harnessConfig struct {
	live  bool    // the room is live before the task starts
	speed float64 // simulator pacing; default 4
	opts  func(*recording.Options)
	title string
	cover string // path on the simulator of the room's cover; default its own
	quiet bool   // no logs (benchmarks)
	// budget is the client's request budget; nil is none. Benchmarks of
	// latency use roomrec's default, as a user has it.
	budget *bilibili.Budget
}

func newHarness(t testing.TB, hc harnessConfig) *harness {
	t.Helper()
	if hc.speed == 0 {
		hc.speed = 4
	}
	sim := bilibilitest.Start(t, bilibilitest.Config{Speed: hc.speed})
	title := hc.title
	if title == "" {
		title = "测试直播"
	}
	cover := ""
	if hc.cover != "" {
		cover = sim.URL() + hc.cover
	}
	room := sim.AddRoom(bilibilitest.RoomConfig{
		RoomID: testRoom, ShortID: 1, UID: 9617619, Anchor: "主播", Title: title, Cover: cover,
		AreaName: "主机游戏", ParentAreaName: "单机游戏", Live: hc.live,
	})
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if hc.quiet {
		logger = slog.New(slog.DiscardHandler)
	}
	api := bilibili.NewClient(bilibili.Options{Endpoints: bilibili.SingleEndpoint(sim.URL()), Budget: hc.budget}, &http.Client{}, logger)
	opts := recording.Options{
		Dir:          dir,
		PollInterval: 2 * time.Second,
		StallTimeout: 2 * time.Second,
		EndGrace:     2 * time.Second,
		RetryBackoff: 100 * time.Millisecond,
		MaxBackoff:   time.Second,
		RiskBackoff:  500 * time.Millisecond,
		Danmaku:      recording.DanmakuOptions{HeartbeatInterval: time.Second, ReadTimeout: 5 * time.Second},
		Logger:       logger,
	}
	if hc.opts != nil {
		hc.opts(&opts)
	}
	events := newEventLog()
	h := &harness{t: t, sim: sim, room: room, dir: dir, events: events}
	h.mgr = recording.NewManager(api, opts, events.add)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := h.mgr.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return h
}

// start acquires the test room for recording and waits until its danmaku
// websocket is up, so pushes sent afterwards are seen.
func (h *harness) start() *recording.Task {
	h.t.Helper()
	task, err := h.mgr.Acquire(context.Background(), testRoom, true)
	if err != nil {
		h.t.Fatalf("acquire: %v", err)
	}
	waitUntil(h.t, 5*time.Second, "danmaku connection", func() bool { return h.sim.DanmakuConnections(testRoom) > 0 })
	return task
}

// testWriter sends logs to t.Log so they show only for failing tests.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventLog collects events for tests to wait on.
type eventLog struct {
	mu     sync.Mutex
	events []recording.Event
	added  chan struct{}
	onAdd  func(recording.Event) // called with mu held, if set
}

func newEventLog() *eventLog { return &eventLog{added: make(chan struct{}, 1)} }

func (l *eventLog) add(e recording.Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	if l.onAdd != nil {
		l.onAdd(e)
	}
	l.mu.Unlock()
	select {
	case l.added <- struct{}{}:
	default:
	}
}

func (l *eventLog) all() []recording.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]recording.Event(nil), l.events...)
}

// ofType returns the events of type T seen so far.
func ofType[T recording.Event](l *eventLog) []T {
	var out []T
	for _, e := range l.all() {
		if v, ok := e.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// waitCount waits until at least n events of type T have been seen.
func waitCount[T recording.Event](t testing.TB, l *eventLog, n int, timeout time.Duration) []T {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if got := ofType[T](l); len(got) >= n {
			return got
		}
		select {
		case <-l.added:
		case <-deadline:
			var zero T
			t.Fatalf("timed out after %s waiting for %d %T events; events: %s", timeout, n, zero, describe(l.all()))
		}
	}
}

func describe(events []recording.Event) string {
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "\n  %T %+v", e, e)
	}
	return b.String()
}

// probe checks a finished file with ffprobe: it must decode, every stream's
// timestamps must never go back, and it returns the media duration.
func probe(t testing.TB, path string) time.Duration {
	t.Helper()
	return probeStreams(t, path, 2)
}

// probeTail is probe for the last file of a broadcast, which may be cut a
// few milliseconds after a split: a keyframe and no audio yet is a faithful
// recording of what arrived, so it needs only one stream.
func probeTail(t testing.TB, path string) time.Duration {
	t.Helper()
	return probeStreams(t, path, 1)
}

func probeStreams(t testing.TB, path string, streams int) time.Duration {
	t.Helper()
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Skip("ffprobe not installed (apt-get install ffmpeg)")
	}
	var stderr strings.Builder
	cmd := exec.Command("ffprobe", "-v", "error", "-show_entries", "packet=stream_index,dts_time,duration_time",
		"-of", "csv=p=0", path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", filepath.Base(path), err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("ffprobe %s reports problems:\n%s", filepath.Base(path), stderr.String())
	}
	last := map[string]float64{}
	end := 0.0
	packets := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, ",")
		if len(f) < 2 || f[1] == "N/A" {
			continue
		}
		dts, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			t.Fatalf("ffprobe %s: bad line %q", filepath.Base(path), line)
		}
		if prev, ok := last[f[0]]; ok && dts < prev {
			t.Errorf("%s: stream %s dts goes back from %.3f to %.3f", filepath.Base(path), f[0], prev, dts)
		}
		last[f[0]] = dts
		end = math.Max(end, dts)
		packets++
	}
	if packets == 0 {
		t.Fatalf("%s has no packets", filepath.Base(path))
	}
	if len(last) < streams || len(last) > 2 {
		t.Errorf("%s has %d streams with packets, want %d (video and audio)", filepath.Base(path), len(last), streams)
	}
	return time.Duration(end * float64(time.Second))
}

// files returns the finished files in the room's directory with the given
// extension, and fails if any .part is left.
func (h *harness) files(ext string) []string {
	h.t.Helper()
	entries, err := os.ReadDir(filepath.Join(h.dir, strconv.Itoa(testRoom)))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		h.t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".part") {
			h.t.Errorf("%s left behind", e.Name())
		}
		if strings.HasSuffix(e.Name(), ext) {
			out = append(out, filepath.Join(h.dir, strconv.Itoa(testRoom), e.Name()))
		}
	}
	return out
}

// videoSize returns a file's video resolution as WIDTHxHEIGHT.
func videoSize(t testing.TB, path string) string {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0",
		"-show_entries", "stream=width,height", "-of", "csv=p=0:s=x", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", filepath.Base(path), err)
	}
	return strings.TrimSpace(string(out))
}
