package recording_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"roomrec/recording"
)

// lockedBuffer is a log destination tests read while tasks write to it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// The websocket dials on DanmakuOptions.Network with the default dialer:
// the simulator listens on 127.0.0.1 only, so tcp6 can never reach it and
// tcp4 always does.
func TestDanmakuDialsOnTheConfiguredNetwork(t *testing.T) {
	tests := []struct {
		network   string
		reachable bool
	}{
		{"tcp4", true},
		{"tcp6", false},
	}
	for _, tt := range tests {
		t.Run(tt.network, func(t *testing.T) {
			var log lockedBuffer
			h := newHarness(t, harnessConfig{opts: func(o *recording.Options) {
				o.Danmaku.Network = tt.network
				o.Logger = slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
			}})
			if _, err := h.mgr.Acquire(context.Background(), testRoom, true); err != nil {
				t.Fatal(err)
			}
			if tt.reachable {
				waitUntil(t, 5*time.Second, "danmaku connection", func() bool { return h.sim.DanmakuConnections(testRoom) == 1 })
				return
			}
			waitUntil(t, 5*time.Second, "a failed danmaku connect", func() bool {
				return strings.Contains(log.String(), "danmaku connect failed")
			})
			if n := h.sim.DanmakuConnections(testRoom); n != 0 {
				t.Errorf("%d danmaku connections over %s to an IPv4-only server, want 0", n, tt.network)
			}
			if !strings.Contains(log.String(), "dial tcp6") {
				t.Errorf("the failed connect does not name tcp6:\n%s", log.String())
			}
		})
	}
}
