package main

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"roomrec/bilibili/bilibilitest"
	"roomrec/recording"
)

// ROOMREC_NETWORK reaches the danmaku websocket as it reaches the API
// client: the recorder cmd/roomrec builds dials the websocket on the named
// network. The test only watches the network the dial is asked for, at the
// bottom, where the websocket meets the operating system.
func TestNetworkReachesDanmakuWebsocket(t *testing.T) {
	tests := []struct {
		network, want string
	}{
		{"any", "tcp"},
		{"ipv4", "tcp4"},
	}
	for _, tt := range tests {
		t.Run(tt.network, func(t *testing.T) {
			sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 4})
			sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, Anchor: "主播", Title: "今晚"})
			m, out, _ := testMain(t, map[string]string{"BILIBILI_API_URL": sim.URL(), "ROOMREC_NETWORK": tt.network})
			var mu sync.Mutex
			var asked []string
			configure := m.Options
			m.Options = func(o *recording.Options) {
				configure(o)
				var d net.Dialer
				o.Danmaku.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
					mu.Lock()
					asked = append(asked, network)
					mu.Unlock()
					return d.DialContext(ctx, network, addr)
				}
			}
			startMain(t, m, "record", "5440")
			waitFor(t, 5*time.Second, "danmaku connection", func() bool { return sim.DanmakuConnections(5440) == 1 })
			if err := m.Close(context.Background()); err != nil {
				t.Fatalf("record: %v\n%s", err, out)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(asked) == 0 || slices.ContainsFunc(asked, func(n string) bool { return n != tt.want }) {
				t.Errorf("ROOMREC_NETWORK=%s: websocket dialed on %q, want %s every time", tt.network, asked, tt.want)
			}
		})
	}
}
