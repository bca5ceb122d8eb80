package main

import (
	"bufio"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"roomrec/bilibili/bilibilitest"
	"roomrec/webhook"
)

// BenchmarkWebhookSoak is TestSoak with a webhook receiver: many simulated
// rooms go through random broadcasts, stream cuts and ends against one
// roomrec process (`roomrec console`, the real binary), which posts every
// event to a receiver in this process. It reports the delivery lag (from
// the event's EventTimestamp, when its fact was recorded, to the receiver
// having the POST) and the deepest the outbox got, sampled from /metrics
// ten times a second; and checks that every event arrived exactly once,
// each room's in BililiveRecorder's order, with nothing left queued.
//
//	ROOMREC_SOAK_ROOMS=200 ROOMREC_SOAK_SECONDS=60 go test -run '^$' -bench WebhookSoak -benchtime 1x -timeout 30m ./cmd/roomrec/
func BenchmarkWebhookSoak(b *testing.B) {
	rooms, seconds := envInt("ROOMREC_SOAK_ROOMS", 200), envInt("ROOMREC_SOAK_SECONDS", 60)
	bin := filepath.Join(b.TempDir(), "roomrec")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	sim := bilibilitest.Start(b, bilibilitest.Config{Speed: 2})
	var ids []int64
	for i := range rooms {
		id := int64(700000 + i)
		sim.AddRoom(bilibilitest.RoomConfig{RoomID: id, Anchor: fmt.Sprintf("anchor%d", id), Title: "soak"})
		ids = append(ids, id)
	}
	rcv := newHookReceiver(b)
	dir := b.TempDir()
	// In-process tests take port 0 and ask Main.HTTPAddr; a process of
	// its own is told a port.
	addr := unusedAddr(b)
	cmd := exec.Command(bin, "console")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ROOMREC_DATA_DIR="+dir, "BILIBILI_API_URL="+sim.URL(), "ROOMREC_HTTP_ADDR="+addr,
		"ROOMREC_MIN_FREE_MB=0", "ROOMREC_LOG_LEVEL=warn", "ROOMREC_WEBHOOK_URLS="+rcv.URL(), "ROOMREC_WEBHOOK_SECRET=soak",
		// The soak packs weeks of broadcasts into seconds; Bilibili's
		// budget (2 requests a second) is sized for real time, and
		// would be all the soak measured.
		"ROOMREC_API_RATE=1000")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Process.Kill()
	go io.Copy(io.Discard, bufio.NewReader(stdout))
	for _, id := range ids {
		io.WriteString(stdin, fmt.Sprintf("/record %d\n", id))
	}
	deadline := time.Now().Add(60 * time.Second)
	for connected := 0; connected < rooms; {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d rooms connected", connected, rooms)
		}
		time.Sleep(200 * time.Millisecond)
		connected = 0
		for _, id := range ids {
			connected += sim.DanmakuConnections(id)
		}
	}

	// The outbox depth, sampled.
	depthRE := regexp.MustCompile(`roomrec_webhook_outbox_depth\{url="[^"]*"\} (\d+)`)
	var maxDepth int
	stopSampling := make(chan struct{})
	var sampling sync.WaitGroup
	sampling.Go(func() {
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(100 * time.Millisecond):
			}
			resp, err := http.Get("http://" + addr + "/metrics")
			if err != nil {
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if m := depthRE.FindSubmatch(body); m != nil {
				n, _ := strconv.Atoi(string(m[1]))
				maxDepth = max(maxDepth, n)
			}
		}
	})

	end := time.Now().Add(time.Duration(seconds) * time.Second)
	broadcasts, lives := liveRandomly(sim, ids, end)
	for b.Loop() {
		lives()
	}
	time.Sleep(3 * time.Second) // the last ends land
	stdin.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			b.Errorf("roomrec exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		b.Fatal("roomrec did not exit at the end of input")
	}
	close(stopSampling)
	sampling.Wait()

	hits := rcv.all()
	seen := map[string]int{}
	perRoom := map[int64][]string{}
	var lags []time.Duration
	total := 0
	for _, h := range hits {
		if !h.Confirmed {
			continue
		}
		seen[h.EventId]++
		if seen[h.EventId] > 1 {
			continue // at least once: a repeat is allowed, and counted below
		}
		perRoom[h.EventData.RoomId] = append(perRoom[h.EventData.RoomId], h.EventType)
		if ts, err := time.Parse(webhook.TimeLayout, h.EventTimestamp); err == nil {
			lags = append(lags, h.At.Sub(ts))
		}
	}
	repeats := 0
	for _, n := range seen {
		repeats += n - 1
	}
	for i, id := range ids {
		total += broadcasts[i]
		evs := perRoom[id]
		if got := count(evs, webhook.StreamStarted); got != broadcasts[i] || count(evs, webhook.StreamEnded) != broadcasts[i] {
			b.Errorf("room %d: %d StreamStarted and %d StreamEnded for %d broadcasts", id, got, count(evs, webhook.StreamEnded), broadcasts[i])
		}
		if err := wellFormed(evs); err != nil {
			b.Errorf("room %d: %v: %v", id, err, evs)
		}
	}
	db, err := sql.Open("sqlite3", filepath.Join(dir, "roomrec.db"))
	if err != nil {
		b.Fatal(err)
	}
	var left int
	db.QueryRow(`SELECT count(*) FROM webhook_events`).Scan(&left)
	db.Close()
	if left != 0 {
		b.Errorf("%d events left in the outbox after roomrec exited", left)
	}
	slices.Sort(lags)
	pct := func(p float64) time.Duration {
		if len(lags) == 0 {
			return 0
		}
		return lags[min(len(lags)-1, int(float64(len(lags))*p))]
	}
	b.ReportMetric(float64(len(seen)), "events")
	b.ReportMetric(float64(pct(0.50).Microseconds())/1000, "ms-lag-p50")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "ms-lag-p99")
	b.ReportMetric(float64(pct(1).Microseconds())/1000, "ms-lag-max")
	b.ReportMetric(float64(maxDepth), "max-outbox-depth")
	b.Logf("%d rooms, %d s: %d broadcasts, %d events, %d repeated, lag p50 %s p99 %s max %s, outbox depth at most %d",
		rooms, seconds, total, len(seen), repeats, pct(0.5), pct(0.99), pct(1), maxDepth)
}

func count(evs []string, typ string) int {
	n := 0
	for _, e := range evs {
		if e == typ {
			n++
		}
	}
	return n
}

// wellFormed checks one room's events against BililiveRecorder's order:
// streams do not overlap, sessions sit inside a stream, files inside a
// session, one file open at a time.
func wellFormed(evs []string) error {
	stream, session, file := false, false, false
	for i, e := range evs {
		ok := true
		switch e {
		case webhook.StreamStarted:
			ok, stream = !stream, true
		case webhook.SessionStarted:
			ok, session = stream && !session, true
		case webhook.FileOpening:
			ok, file = session && !file, true
		case webhook.FileClosed:
			ok, file = file, false
		case webhook.SessionEnded:
			ok, session = session && !file, false
		case webhook.StreamEnded:
			ok, stream = stream && !session, false
		}
		if !ok {
			return fmt.Errorf("event %d (%s) out of order", i, e)
		}
	}
	if stream || session || file {
		return fmt.Errorf("left open: stream %v, session %v, file %v", stream, session, file)
	}
	return nil
}
