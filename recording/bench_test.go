package recording_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"roomrec/recording"
)

// BenchmarkLiveToStreamRequest measures how long after a LIVE push the first
// stream request reaches the CDN: room info, play info and the request
// itself, over loopback. Target: under 500 ms.
func BenchmarkLiveToStreamRequest(b *testing.B) {
	h := newHarness(b, harnessConfig{quiet: true})
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
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/live")
}

// BenchmarkCutToReconnect measures how long after a stream breaks, while the
// room is live, the next stream request arrives. Target: under 1 s.
func BenchmarkCutToReconnect(b *testing.B) {
	h := newHarness(b, harnessConfig{live: true, quiet: true})
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
		time.Sleep(50 * time.Millisecond) // let the new connection deliver data
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
