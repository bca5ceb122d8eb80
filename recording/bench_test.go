package recording_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"roomrec/bilibili"
	"roomrec/bilibili/bilibilitest"
	"roomrec/recording"
	"roomrec/recording/flv"
)

// budgetRefill is how long the default budget takes to refill its burst:
// the latency benchmarks pause this long between rounds, so that each
// round sees the budget as a real broadcast does, rather than what the
// rounds before it used.
const budgetRefill = time.Duration(float64(bilibili.DefaultBurst) / float64(bilibili.DefaultRate) * float64(time.Second))

// BenchmarkLiveToStreamRequest measures how long after a LIVE push the first
// stream request reaches the CDN: room info, play info and the request
// itself, over loopback, within roomrec's default API budget. Target:
// under 100 ms.
func BenchmarkLiveToStreamRequest(b *testing.B) {
	h := newHarness(b, harnessConfig{quiet: true, budget: bilibili.NewBudget(bilibili.DefaultRate, bilibili.DefaultBurst)})
	h.start()
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		before := h.room.StreamRequests()
		pushed := time.Now()
		h.room.GoLive()
		got, err := h.room.WaitStreamRequest(context.Background(), before+1)
		if err != nil {
			b.Fatal(err)
		}
		total += got.Sub(pushed)
		b.StopTimer()
		h.room.EndLive()
		waitCount[recording.LiveEnded](b, h.events, i+1, 10*time.Second)
		time.Sleep(budgetRefill) // broadcasts are hours apart, not seconds
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/live")
}

// BenchmarkCutToReconnect measures how long after a stream breaks, while the
// room is live, the next stream request arrives, within roomrec's default
// API budget. Target: under 1 s.
func BenchmarkCutToReconnect(b *testing.B) {
	h := newHarness(b, harnessConfig{live: true, quiet: true, budget: bilibili.NewBudget(bilibili.DefaultRate, bilibili.DefaultBurst)})
	h.start()
	waitCount[recording.FileOpened](b, h.events, 1, 5*time.Second)
	var total time.Duration
	for b.Loop() {
		before := h.room.StreamRequests()
		cut := time.Now()
		h.room.CutStream()
		got, err := h.room.WaitStreamRequest(context.Background(), before+1)
		if err != nil {
			b.Fatal(err)
		}
		total += got.Sub(cut)
		b.StopTimer()
		time.Sleep(budgetRefill) // let the new connection deliver data; cuts are minutes apart
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/cut")
}

// BenchmarkRecordingCPU records the simulator's stream at 200x real time
// and reports the CPU time the whole process (roomrec's download path and
// the simulator serving it) spends per MB recorded. It is an upper bound
// for roomrec alone; at 8 Mbit/s (1 MB/s) N ms/MB is N/10 % of one core.
func BenchmarkRecordingCPU(b *testing.B) {
	h := newHarness(b, harnessConfig{live: true, speed: 200, quiet: true})
	h.start()
	waitCount[recording.FileOpened](b, h.events, 1, 5*time.Second)
	time.Sleep(200 * time.Millisecond)
	startCPU, startBytes := cpuTime(b), recordedBytes(h)
	for b.Loop() {
		time.Sleep(100 * time.Millisecond)
	}
	cpu, bytes := cpuTime(b)-startCPU, recordedBytes(h)-startBytes
	if bytes == 0 {
		b.Fatal("nothing recorded")
	}
	b.ReportMetric(float64(cpu.Microseconds())/1000/(float64(bytes)/1e6), "cpu-ms/MB")
	b.ReportMetric(float64(bytes)/1e6/b.Elapsed().Seconds(), "MB/s")
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// recordedBytes is what the task has written in the current broadcast,
// including the file still open.
func recordedBytes(h *harness) int64 {
	task, ok := h.mgr.Get(testRoom)
	if !ok {
		return 0
	}
	return task.Info().Bytes
}

// hlsBenchHarness is a harness for the HLS latency benchmarks: the room
// offers only H.264 in fMP4, the simulator runs in real time (the
// playlist's cadence, one segment a second, is what is measured against),
// and the task retries as in production: first after about 250 ms, then
// backing off.
func hlsBenchHarness(b *testing.B, live bool) *harness {
	h := newHarness(b, harnessConfig{live: live, speed: 1, quiet: true, opts: func(o *recording.Options) {
		o.RetryBackoff, o.MaxBackoff, o.StallTimeout = 0, 0, 0 // the defaults
	}})
	offer, err := bilibilitest.ParseOffer("fmp4/avc")
	if err != nil {
		b.Fatal(err)
	}
	h.room.SetOffer(offer)
	return h
}

// goLiveAtRandomPhase waits a random fraction of a second, so the
// simulator's encoder (which makes its first segment at the next whole
// second) is met at every phase alike, then sends LIVE. It returns when
// LIVE was sent and when the first segment is made.
func goLiveAtRandomPhase(room *bilibilitest.Room) (pushed, made time.Time) {
	time.Sleep(rand.N(time.Second))
	pushed = time.Now()
	room.GoLive()
	return pushed, pushed.Truncate(time.Second).Add(time.Second)
}

// liveLatency sums, over a benchmark's iterations, how long after LIVE
// something happened, and how long after LIVE the simulator had made the
// first segment, which nothing can be fetched before.
type liveLatency struct {
	total, worst, made time.Duration
	n                  int
}

func (l *liveLatency) add(pushed, made, got time.Time) {
	d := got.Sub(pushed)
	l.total += d
	l.worst = max(l.worst, d)
	l.made += made.Sub(pushed)
	l.n++
}

func (l *liveLatency) report(b *testing.B, unit string) {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(l.total)/float64(l.n), unit)
	b.ReportMetric(ms(l.worst), "max-ms")
	b.ReportMetric(ms(l.made)/float64(l.n), "segment-made-ms")
}

// BenchmarkHLSLiveToSegmentRequest measures how long after a LIVE push an
// HLS-only room's first media segment request reaches the CDN: room info,
// play info, the playlist (which answers 404 until the encoder has made
// its first 1 s segment, up to a second after LIVE) and the segment
// request. segment-made-ms is when that first segment existed. Target:
// under 1 s.
func BenchmarkHLSLiveToSegmentRequest(b *testing.B) {
	h := hlsBenchHarness(b, false)
	h.start()
	var lat liveLatency
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		before := h.room.SegmentRequests()
		pushed, made := goLiveAtRandomPhase(h.room)
		b.StartTimer()
		got, err := h.room.WaitSegmentRequest(context.Background(), before+1)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		lat.add(pushed, made, got)
		h.room.EndLive()
		waitCount[recording.LiveEnded](b, h.events, i+1, 10*time.Second)
		b.StartTimer()
	}
	lat.report(b, "ms/live")
}

// BenchmarkHLSLiveToBytesOnDisk measures how long after a LIVE push the
// first bytes of an HLS-only room's recording are on disk: the video .part
// file in the room's directory has a non-zero size (polled every 2 ms).
// That first write is the FLV header (H.264 goes into FLV); media-ms is
// when the file first holds more than the header: the first frames.
// Target: under 2 s.
func BenchmarkHLSLiveToBytesOnDisk(b *testing.B) {
	h := hlsBenchHarness(b, false)
	h.start()
	dir := filepath.Join(h.dir, strconv.Itoa(testRoom))
	var header bytes.Buffer
	if err := flv.NewFileWriter(&header, nil).WriteHeader(); err != nil {
		b.Fatal(err)
	}
	var lat, media liveLatency
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		pushed, made := goLiveAtRandomPhase(h.room)
		b.StartTimer()
		got := waitPartSize(b, dir, 0, 10*time.Second)
		b.StopTimer()
		lat.add(pushed, made, got)
		media.add(pushed, made, waitPartSize(b, dir, int64(header.Len()), 10*time.Second))
		h.room.EndLive()
		waitCount[recording.LiveEnded](b, h.events, i+1, 10*time.Second)
		b.StartTimer()
	}
	lat.report(b, "ms/live")
	b.ReportMetric(float64(media.total.Microseconds())/1000/float64(media.n), "media-ms")
}

// waitPartSize waits until a video .part file in dir (.flv.part or
// .mp4.part; the danmaku .xml.part beside it does not count) holds more
// than size bytes and returns when that was seen.
func waitPartSize(b *testing.B, dir string, size int64, timeout time.Duration) time.Time {
	deadline := time.Now().Add(timeout)
	for {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".flv.part") && !strings.HasSuffix(e.Name(), ".mp4.part") {
				continue
			}
			if fi, err := e.Info(); err == nil && fi.Size() > size {
				return time.Now()
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("no .part file of more than %d bytes in %s after %s", size, dir, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// BenchmarkHLSExpiredToNextSegment measures how long after the stream URLs
// expire (the playlist answers 403) the next media segment request comes,
// on fresh play info, while the room is live. The expiry falls at a random
// point of the one-second playlist cadence. Target: under 2 s.
func BenchmarkHLSExpiredToNextSegment(b *testing.B) {
	benchHLSFault(b, func(r *bilibilitest.Room) { r.ExpireURLs() })
}

// BenchmarkHLSStallToNextSegment measures how long after the playlist of
// the URLs in use stops growing (one stuck CDN node; fresh play info leads
// elsewhere) the next media segment request comes, on fresh play info,
// while the room is live. Most of it is hlsStallAfter: a playlist counts as
// stalled after 1.5 target durations (1.5 s) without a new segment. The
// stall starts at a random point of the playlist cadence. Target: under
// 2 s.
func BenchmarkHLSStallToNextSegment(b *testing.B) {
	benchHLSFault(b, func(r *bilibilitest.Room) { r.StallPlaylistNode(time.Minute) })
}

// benchHLSFault times fault → the first segment request after roomrec has
// fetched fresh play info, on a live fMP4 room in real time.
func benchHLSFault(b *testing.B, fault func(*bilibilitest.Room)) {
	h := hlsBenchHarness(b, true)
	h.start()
	waitCount[recording.FileOpened](b, h.events, 1, 10*time.Second)
	wait := func(n int) time.Time {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		got, err := h.room.WaitSegmentRequest(ctx, n)
		if err != nil {
			b.Fatalf("segment request %d: %v", n, err)
		}
		return got
	}
	var total, worst time.Duration
	for b.Loop() {
		b.StopTimer()
		wait(h.room.SegmentRequests() + 1) // in step with the cadence,
		time.Sleep(rand.N(time.Second))    // then at a random point of it
		playInfo, n := h.sim.Requests(bilibilitest.PathPlayInfo), h.room.SegmentRequests()
		b.StartTimer()
		at := time.Now()
		fault(h.room)
		var got time.Time
		for {
			// A request for a segment of the playlist before the fault
			// does not count.
			n++
			if got = wait(n); h.sim.Requests(bilibilitest.PathPlayInfo) > playInfo {
				break
			}
		}
		d := got.Sub(at)
		total += d
		worst = max(worst, d)
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/fault")
	b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms")
}
