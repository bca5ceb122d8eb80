package main

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"roomrec/bilibili/bilibilitest"
)

// TestSoak drives many simulated rooms through random broadcasts, stream
// cuts and ends against one roomrec process (`roomrec console`, so alerts
// come back on its standard output), then checks that every broadcast was
// alerted exactly once and recorded, that every file plays, that nothing
// is left half-written, and that memory stayed flat. The short form runs
// in CI; ROOMREC_SOAK_ROOMS and ROOMREC_SOAK_SECONDS make it longer:
//
//	ROOMREC_SOAK_ROOMS=200 ROOMREC_SOAK_SECONDS=300 go test -run TestSoak -timeout 30m -v ./cmd/roomrec/
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak")
	}
	rooms, seconds := envInt("ROOMREC_SOAK_ROOMS", 20), envInt("ROOMREC_SOAK_SECONDS", 20)
	bin := filepath.Join(t.TempDir(), "roomrec")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 2})
	var ids []int64
	for i := range rooms {
		id := int64(700000 + i)
		sim.AddRoom(bilibilitest.RoomConfig{RoomID: id, Anchor: fmt.Sprintf("anchor%d", id), Title: "soak"})
		ids = append(ids, id)
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "console")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ROOMREC_DATA_DIR="+dir, "BILIBILI_API_URL="+sim.URL(), "ROOMREC_HTTP_ADDR=off",
		"ROOMREC_MIN_FREE_MB=0", "ROOMREC_LOG_LEVEL=warn",
		// The soak packs weeks of broadcasts into seconds; Bilibili's
		// budget (2 requests a second) is sized for real time, and
		// would be all the soak measured.
		"ROOMREC_API_RATE=1000")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	// Collect alerts ("anchorN is live") as roomrec prints them.
	var mu sync.Mutex
	alerts := map[string]int{}
	replies := make(chan string, 1000)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			line := s.Text()
			if name, _, ok := strings.Cut(line, " is live:"); ok {
				mu.Lock()
				alerts[strings.TrimPrefix(name, "🔴 ")]++
				mu.Unlock()
			}
			select {
			case replies <- line:
			default:
			}
		}
	}()
	for _, id := range ids {
		io.WriteString(stdin, fmt.Sprintf("/record %d\n", id))
	}
	deadline := time.Now().Add(30 * time.Second)
	for connected := 0; connected < rooms; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d rooms connected", connected, rooms)
		}
		time.Sleep(200 * time.Millisecond)
		connected = 0
		for _, id := range ids {
			connected += sim.DanmakuConnections(id)
		}
	}

	// Each room lives its own random life until the end.
	end := time.Now().Add(time.Duration(seconds) * time.Second)
	broadcasts, lives := liveRandomly(sim, ids, end)
	var rss []int64
	for time.Now().Before(end) {
		rss = append(rss, procStatus(t, cmd.Process.Pid, "VmRSS"))
		time.Sleep(time.Second)
	}
	lives()
	time.Sleep(3 * time.Second) // last ends and alerts land
	stdin.Close()               // Ctrl-D: roomrec finishes its files and exits
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("roomrec exited with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("roomrec did not exit at the end of input")
	}

	total := 0
	mu.Lock()
	for i, id := range ids {
		total += broadcasts[i]
		if got := alerts[fmt.Sprintf("anchor%d", id)]; got != broadcasts[i] {
			t.Errorf("room %d: %d alerts for %d broadcasts", id, got, broadcasts[i])
		}
	}
	mu.Unlock()
	files, _ := filepath.Glob(filepath.Join(dir, "recordings", "*", "*.flv"))
	parts, _ := filepath.Glob(filepath.Join(dir, "recordings", "*", "*.part"))
	if len(parts) != 0 {
		t.Errorf("%d files left half-written: %q", len(parts), parts)
	}
	roomFiles := files
	roomsWithFiles := map[string]bool{}
	for _, f := range files {
		roomsWithFiles[filepath.Base(filepath.Dir(f))] = true
	}
	// Every file is probed; a long soak makes thousands, so in parallel.
	played := "all play"
	if _, err := exec.LookPath("ffprobe"); err != nil {
		played = "not probed: no ffprobe"
		files = nil
	}
	probes := make(chan string)
	var probing sync.WaitGroup
	for range runtime.NumCPU() {
		probing.Go(func() {
			for f := range probes {
				if out, err := exec.Command("ffprobe", "-v", "error", f).CombinedOutput(); err != nil || len(out) > 0 {
					t.Errorf("%s does not play cleanly: %v %s", filepath.Base(f), err, out)
				}
			}
		})
	}
	for _, f := range files {
		probes <- f
	}
	close(probes)
	probing.Wait()
	for i, id := range ids {
		if broadcasts[i] > 0 && !roomsWithFiles[strconv.FormatInt(id, 10)] {
			t.Errorf("room %d had %d broadcasts and no file", id, broadcasts[i])
		}
	}
	half := len(rss) / 2
	early, late := maxOf(rss[:max(half, 1)]), maxOf(rss[half:])
	if late > early*3/2+10<<10 {
		t.Errorf("memory grew from %d MB to %d MB", early>>10, late>>10)
	}
	t.Logf("%d rooms, %d s: %d broadcasts, %d files (%s), peak RSS %d MB early, %d MB late",
		rooms, seconds, total, len(roomFiles), played, early>>10, late>>10)
}

// liveRandomly has each room live its own random life until end: go
// live, maybe have the stream cut halfway, end, pause; the last broadcast
// ends by 6 s before end. It returns each room's count of broadcasts, to
// be read once wait has returned.
func liveRandomly(sim *bilibilitest.Server, ids []int64, end time.Time) (broadcasts []int, wait func()) {
	broadcasts = make([]int, len(ids))
	var lives sync.WaitGroup
	for i, id := range ids {
		r := rand.New(rand.NewPCG(uint64(id), 1))
		room := sim.Room(id)
		lives.Go(func() {
			for time.Now().Add(6 * time.Second).Before(end) {
				time.Sleep(time.Duration(r.IntN(2000)) * time.Millisecond)
				room.GoLive()
				broadcasts[i]++
				live := time.Duration(2000+r.IntN(3000)) * time.Millisecond
				if r.IntN(3) == 0 {
					time.Sleep(live / 2)
					room.CutStream()
					time.Sleep(live / 2)
				} else {
					time.Sleep(live)
				}
				room.EndLive()
				// A new broadcast needs a new start second to be a new one.
				time.Sleep(1100 * time.Millisecond)
			}
		})
	}
	return broadcasts, lives.Wait
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func maxOf(xs []int64) int64 {
	var m int64
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
