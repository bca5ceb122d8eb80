package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"roomrec/bilibili/bilibilitest"
	"roomrec/storage"
)

// These benchmarks are load programs: they build the real roomrec binary,
// run it as a child process against the simulator in this process, and
// measure the child alone through /proc. Run them with
//
//	go test -run '^$' -bench . -benchtime 1x ./cmd/roomrec/

// startRoomrec builds roomrec and starts `roomrec record rooms...` against
// sim, with env added to its environment, returning the running command.
func startRoomrec(b *testing.B, sim *bilibilitest.Server, rooms []string, env ...string) *exec.Cmd {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "roomrec")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build roomrec: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, append([]string{"record"}, rooms...)...)
	cmd.Dir = b.TempDir()
	cmd.Env = append(os.Environ(), "BILIBILI_API_URL="+sim.URL(), "ROOMREC_DATA_DIR="+cmd.Dir, "ROOMREC_LOG_LEVEL=warn", "ROOMREC_MIN_FREE_MB=0", "ROOMREC_HTTP_ADDR=off")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { interrupt(cmd) })
	return cmd
}

// interrupt stops roomrec as Ctrl-C does, and kills it if it has not
// finished its files within 15 s.
func interrupt(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
	}
}

// procStatus returns a field of /proc/PID/status in kB.
func procStatus(b testing.TB, pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return kb
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// procCPU returns the CPU time a process has used.
func procCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond
}

// BenchmarkIdleRooms is a restart of a roomrec whose chats follow idle
// (offline) rooms: 1,000 by default (ROOMREC_IDLE_ROOMS), subscribed in the
// database as /record leaves them, and the same roomrec with none, as
// `roomrec console` (no bot token needed). It reports how long until every
// room had its danmaku websocket, then, after a settling pause, watches
// each process for ROOMREC_IDLE_SECONDS (default 30): its resident memory,
// what each room adds over the process with none, its CPU and the
// Bilibili API requests a minute in that window. The budget is roomrec's
// default (2 requests a second, bursts of 5) unless ROOMREC_API_RATE says
// otherwise. The safety-net poll comes every 5 minutes (±20%), so only a
// window of 6 minutes or more sees the steady-state request rate.
// Targets (issue 14): at most 48 KiB a room, 1% of a core, 30 requests a
// minute, every room connected within 10 minutes.
func BenchmarkIdleRooms(b *testing.B) {
	n := envInt("ROOMREC_IDLE_ROOMS", 1000)
	window := time.Duration(envInt("ROOMREC_IDLE_SECONDS", 30)) * time.Second
	var many, none idleFigures
	for b.Loop() {
		none = measureIdle(b, 0, 10*time.Second) // its memory is all that is asked of it
		many = measureIdle(b, n, window)
	}
	b.ReportMetric(float64(many.rssKB)/1024, "MB-RSS")
	b.ReportMetric(float64(many.peakKB)/1024, "MB-peak-RSS")
	b.ReportMetric(float64(many.rssKB-none.rssKB)/float64(n), "KiB/room")
	b.ReportMetric(100*many.cpu, "%CPU")
	b.ReportMetric(many.apiPerMinute, "API-req/min")
	b.ReportMetric(many.connected.Seconds(), "s-to-connect")
	b.Logf("%d rooms: RSS %.1f MB (no rooms: %.1f MB), %.2f%% of a core, %.1f API requests a minute, all connected after %s; at start %d requests (%d bulk room checks, %d room info), at most %d in any second",
		n, float64(many.rssKB)/1024, float64(none.rssKB)/1024, 100*many.cpu, many.apiPerMinute, many.connected.Round(100*time.Millisecond),
		many.startRequests, many.startBulk, many.startRoomInfo, many.burstPerSecond)
}

// idleFigures is what one idle run measured.
type idleFigures struct {
	rssKB, peakKB int64
	cpu           float64 // share of one core over the window
	apiPerMinute  float64
	connected     time.Duration // from start until every room had a websocket
	// Until every room was connected: API requests in all, bulk room
	// checks, room info calls, and the most in any one second.
	startRequests, startBulk, startRoomInfo, burstPerSecond int
}

// startConsoleChild starts `roomrec console` on a data directory whose
// database has the console chat follow rooms (recording them), and keeps
// its standard input open.
func startConsoleChild(b *testing.B, sim *bilibilitest.Server, rooms []storage.Room, env ...string) (cmd *exec.Cmd, started time.Time) {
	b.Helper()
	dir := b.TempDir()
	ctx := context.Background()
	store, err := storage.Open(ctx, filepath.Join(dir, "roomrec.db"), storage.Options{})
	if err != nil {
		b.Fatal(err)
	}
	chat, err := store.EnsureChat(ctx, storage.Chat{Platform: storage.Console, PlatformID: consoleChat.ID, Title: consoleChat.Title})
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range rooms {
		if _, err := store.Subscribe(ctx, chat.ID, r, storage.Record, "load"); err != nil {
			b.Fatal(err)
		}
	}
	store.Close()
	bin := filepath.Join(b.TempDir(), "roomrec")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build roomrec: %v\n%s", err, out)
	}
	cmd = exec.Command(bin, "console")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BILIBILI_API_URL="+sim.URL(), "ROOMREC_DATA_DIR="+dir, "ROOMREC_LOG_LEVEL=warn", "ROOMREC_MIN_FREE_MB=0", "ROOMREC_HTTP_ADDR=off")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // console ends at the end of its input
	if err != nil {
		b.Fatal(err)
	}
	started = time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		interrupt(cmd)
		stdin.Close()
	})
	return cmd, started
}

// measureIdle restarts roomrec on n offline rooms and measures it once
// they are all connected.
func measureIdle(b *testing.B, n int, window time.Duration) idleFigures {
	b.Helper()
	sim := bilibilitest.Start(b, bilibilitest.Config{})
	var rooms []storage.Room
	for i := range n {
		id := int64(100000 + i)
		sim.AddRoom(bilibilitest.RoomConfig{RoomID: id})
		rooms = append(rooms, storage.Room{RoomID: id, UID: id * 7, Anchor: fmt.Sprintf("主播%d", id)})
	}
	cmd, started := startConsoleChild(b, sim, rooms)
	deadline := started.Add(10 * time.Minute)
	var f idleFigures
	for connected := 0; connected < n; {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d rooms connected after 10 minutes", connected, n)
		}
		time.Sleep(200 * time.Millisecond)
		connected = 0
		for i := range n {
			connected += min(sim.DanmakuConnections(int64(100000+i)), 1)
		}
	}
	f.connected = time.Since(started)
	log := sim.RequestLog()
	f.startRequests = len(log)
	perSecond := map[int64]int{}
	for _, r := range log {
		switch r.Path {
		case bilibilitest.PathRoomsOfAnchors:
			f.startBulk++
		case bilibilitest.PathRoomInfo:
			f.startRoomInfo++
		}
		perSecond[r.At.Unix()]++
	}
	for _, c := range perSecond {
		f.burstPerSecond = max(f.burstPerSecond, c)
	}
	time.Sleep(5 * time.Second) // settle: first heartbeats done
	pid := cmd.Process.Pid
	cpu0, api0, t0 := procCPU(b, pid), sim.Requests(""), time.Now()
	for end := t0.Add(window); time.Now().Before(end); time.Sleep(time.Second) {
		f.rssKB = max(f.rssKB, procStatus(b, pid, "VmRSS"))
	}
	elapsed := time.Since(t0)
	f.cpu = (procCPU(b, pid) - cpu0).Seconds() / elapsed.Seconds()
	f.apiPerMinute = float64(sim.Requests("")-api0) / elapsed.Minutes()
	f.peakKB = procStatus(b, pid, "VmHWM")
	return f
}

// BenchmarkRecording8Mbit records one room whose stream the simulator
// plays in real time with 33 KB of filler in every video frame: about
// 8 Mbit/s at a real stream's 30 frames a second. It reports the share of
// one core the roomrec process uses. Target: under 1%.
func BenchmarkRecording8Mbit(b *testing.B) {
	sim := bilibilitest.Start(b, bilibilitest.Config{Speed: 1, VideoFiller: 33000})
	sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, Live: true})
	cmd := startRoomrec(b, sim, []string{"5440"})
	dir := filepath.Join(cmd.Dir, "recordings", "5440")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if parts, _ := filepath.Glob(filepath.Join(dir, "*.flv.part")); len(parts) == 1 {
			break
		}
		if time.Now().After(deadline) {
			entries, err := os.ReadDir(dir)
			b.Fatalf("roomrec did not start recording in %s: %v %v", dir, entries, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // past start-up work
	size := func() int64 { return filesSize(filepath.Join(dir, "*.flv.part")) }
	cpu0, size0, t0 := procCPU(b, cmd.Process.Pid), size(), time.Now()
	for b.Loop() {
		time.Sleep(10 * time.Second)
	}
	cpu, bytes, wall := procCPU(b, cmd.Process.Pid)-cpu0, size()-size0, time.Since(t0)
	b.ReportMetric(float64(bytes)*8/1e6/wall.Seconds(), "Mbit/s")
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "%core")
}

// BenchmarkRecordingHLS8Mbit records one room that offers only H.264 in
// fMP4 HLS, which the simulator plays in real time with 33 KB of filler in
// every video frame: about 8 Mbit/s at 30 frames a second, in 1 s segments
// of four fragments, as Bilibili serves them. It records into FLV (what
// ROOMREC_CONTAINER=auto picks for H.264) and into MP4. It runs for
// ROOMREC_LOAD_SECONDS (default 60) and prints, every 30 s, the share of
// one core the roomrec process used in those 30 s, its resident memory
// (min, max and last of one sample a second) and the machine's load, so
// that flat memory can be judged over a long run; it reports the share of
// one core over the whole run. Target: under 1.5%.
func BenchmarkRecordingHLS8Mbit(b *testing.B) {
	seconds := 60
	if v := os.Getenv("ROOMREC_LOAD_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 30 {
			b.Fatalf("ROOMREC_LOAD_SECONDS=%q: want a whole number of seconds, at least 30", v)
		}
		seconds = n
	}
	for _, container := range []string{"flv", "mp4"} {
		b.Run("container="+container, func(b *testing.B) {
			sim := bilibilitest.Start(b, bilibilitest.Config{Speed: 1, VideoFiller: 33000})
			room := sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, Live: true})
			offer, err := bilibilitest.ParseOffer("fmp4/avc")
			if err != nil {
				b.Fatal(err)
			}
			room.SetOffer(offer)
			cmd := startRoomrec(b, sim, []string{"5440"}, "ROOMREC_CONTAINER="+container)
			pattern := filepath.Join(cmd.Dir, "recordings", "5440", "*."+container+".part")
			waitForFile(b, pattern, 30*time.Second)
			time.Sleep(2 * time.Second) // past start-up work
			for b.Loop() {
				m := measureLoad(b, cmd.Process.Pid, pattern, time.Duration(seconds)*time.Second, 30*time.Second)
				b.ReportMetric(m.mbits, "Mbit/s")
				b.ReportMetric(m.core, "%core")
				b.ReportMetric(m.firstRSS, "MB-RSS-first-30s")
				b.ReportMetric(m.lastRSS, "MB-RSS-last-30s")
			}
		})
	}
}

// waitForFile waits until exactly one file matches pattern.
func waitForFile(b *testing.B, pattern string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		if parts, _ := filepath.Glob(pattern); len(parts) == 1 {
			return
		}
		if time.Now().After(deadline) {
			entries, err := os.ReadDir(filepath.Dir(pattern))
			b.Fatalf("roomrec did not start a %s: %v %v", filepath.Base(pattern), entries, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// loadFigures is what measureLoad found.
type loadFigures struct {
	core              float64 // % of one core over the whole run
	mbits             float64 // recorded, Mbit/s
	firstRSS, lastRSS float64 // MB, the largest sample of the first and of the last interval
}

// measureLoad watches process pid for d: its CPU time, its resident memory
// once a second and the growth of the files matching pattern. It prints a
// line every interval.
func measureLoad(b *testing.B, pid int, pattern string, d, interval time.Duration) loadFigures {
	size := func() int64 { return filesSize(pattern) }
	mb := func(kb int64) float64 { return float64(kb) / 1024 }
	var f loadFigures
	cpu0, size0, t0 := procCPU(b, pid), size(), time.Now()
	cpuAt, sizeAt, at := cpu0, size0, t0
	rssMin, rssMax := int64(math.MaxInt64), int64(0)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for now := range tick.C {
		rss := procStatus(b, pid, "VmRSS")
		rssMin, rssMax = min(rssMin, rss), max(rssMax, rss)
		end := now.Sub(t0) >= d
		if now.Sub(at) < interval && !end {
			continue
		}
		cpu, sz := procCPU(b, pid), size()
		wall := now.Sub(at).Seconds()
		load, _ := os.ReadFile("/proc/loadavg")
		fmt.Printf("%4.0fs: %.2f%% of a core, %.2f Mbit/s, RSS min %.1f max %.1f last %.1f MB; load %s\n",
			now.Sub(t0).Seconds(), 100*(cpu-cpuAt).Seconds()/wall, float64(sz-sizeAt)*8/1e6/wall,
			mb(rssMin), mb(rssMax), mb(rss), strings.Join(strings.Fields(string(load))[:3], " "))
		if f.firstRSS == 0 {
			f.firstRSS = mb(rssMax)
		}
		f.lastRSS = mb(rssMax)
		cpuAt, sizeAt, at = cpu, sz, now
		rssMin, rssMax = math.MaxInt64, 0
		if end {
			wall := now.Sub(t0).Seconds()
			f.core = 100 * (cpu - cpu0).Seconds() / wall
			f.mbits = float64(sz-size0) * 8 / 1e6 / wall
			break
		}
	}
	return f
}

// BenchmarkStartupLiveRooms restarts a console roomrec that follows 1,000
// rooms (ROOMREC_IDLE_ROOMS), five of them live, at the default API
// budget, and reports how long after the start each live room had a file
// being written, and how many websockets were up by then. Target (issue
// 14): a room already live at start-up records within 10 s.
func BenchmarkStartupLiveRooms(b *testing.B) {
	n := envInt("ROOMREC_IDLE_ROOMS", 1000)
	live := map[int64]bool{100000: true, 100250: true, 100500: true, 100750: true, int64(100000 + n - 1): true}
	var slowest time.Duration
	var connected int
	for b.Loop() {
		sim := bilibilitest.Start(b, bilibilitest.Config{})
		var rooms []storage.Room
		for i := range n {
			id := int64(100000 + i)
			sim.AddRoom(bilibilitest.RoomConfig{RoomID: id, Live: live[id]})
			rooms = append(rooms, storage.Room{RoomID: id, UID: id * 7, Anchor: fmt.Sprintf("主播%d", id)})
		}
		cmd, started := startConsoleChild(b, sim, rooms)
		for id := range live {
			waitForFile(b, filepath.Join(cmd.Dir, "recordings", strconv.FormatInt(id, 10), "*.flv.part"), 60*time.Second)
			slowest = max(slowest, time.Since(started))
		}
		for i := range n {
			connected += min(sim.DanmakuConnections(int64(100000+i)), 1)
		}
		calls := map[string]int{}
		for _, r := range sim.RequestLog() {
			calls[strings.TrimPrefix(r.Path[strings.LastIndexByte(r.Path, '/'):], "/")]++
		}
		b.Logf("API calls until then: %v", calls)
	}
	b.ReportMetric(slowest.Seconds(), "s-to-record-live")
	b.ReportMetric(float64(connected), "websockets-by-then")
	b.Logf("%d rooms, %d live: every live room recording %s after the start, with %d of %d websockets up", n, len(live), slowest.Round(10*time.Millisecond), connected, n)
}
