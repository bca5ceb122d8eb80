package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startRun runs the simulator with args until the test ends and returns
// the base URL its banner gives, the banner lines before it, and run's
// result once cancel is called.
func startRun(t *testing.T, args ...string) (base string, banner []string, cancel func(), done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	out, w := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, args, w, io.Discard)
		w.Close()
	}()

	// The banner says where the simulator listens.
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		banner = append(banner, sc.Text())
		if _, after, ok := strings.Cut(sc.Text(), "BILIBILI_API_URL="); ok {
			base, _, _ = strings.Cut(after, " ")
			break
		}
	}
	go io.Copy(io.Discard, out)
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("banner gave BILIBILI_API_URL %q, want http://127.0.0.1:PORT", base)
	}
	return base, banner, cancel, errc
}

func TestRunServesRoomInit(t *testing.T) {
	base, _, cancel, done := startRun(t, "-addr", "127.0.0.1:0", "-speed", "4", "-room", "5440:1:live", "-room", "21452505")

	resp, err := http.Get(base + "/room/v1/Room/room_init?id=1")
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Code int `json:"code"`
		Data struct {
			RoomID     int64 `json:"room_id"`
			LiveStatus int   `json:"live_status"`
		} `json:"data"`
	}
	err = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if body.Code != 0 || body.Data.RoomID != 5440 || body.Data.LiveStatus != 1 {
		t.Errorf("room_init?id=1 = %+v, want room 5440, live", body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run returned %v after cancel, want nil", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("run still serving 3s after cancel")
	}
}

func TestRunDemoRooms(t *testing.T) {
	base, banner, _, _ := startRun(t, "-addr", "127.0.0.1:0")
	if text := strings.Join(banner, "\n"); !strings.Contains(text, "22637261 offline, offers ts/avc fmp4/avc fmp4/hevc") || strings.Count(text, ", offers ") != 4 {
		t.Errorf("banner lists\n%s\nwant the four demo rooms, 22637261 offering HLS only", text)
	}
	resp, err := http.Post(base+"/_sim/rooms/22637261/live", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = http.Get(base + "/xlive/web-room/v2/index/getRoomPlayInfo?room_id=22637261&protocol=0,1&format=0,1,2&codec=0,1&qn=10000")
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Data struct {
			PlayurlInfo struct {
				Playurl struct {
					Stream []struct {
						ProtocolName string `json:"protocol_name"`
					} `json:"stream"`
				} `json:"playurl"`
			} `json:"playurl_info"`
		} `json:"data"`
	}
	err = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if s := body.Data.PlayurlInfo.Playurl.Stream; len(s) != 1 || s[0].ProtocolName != "http_hls" {
		t.Errorf("the HLS-only room, live, offers %+v, want http_hls alone", s)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"speed zero", []string{"-speed", "0"}},
		{"room not a number", []string{"-room", "abc"}},
		{"room with too many parts", []string{"-room", "1:2:3"}},
		{"short equals real", []string{"-room", "5:5"}},
		{"port in use or bad address", []string{"-addr", "256.0.0.1:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := run(ctx, tt.args, io.Discard, io.Discard); err == nil {
				t.Errorf("run(%q) = nil, want an error", tt.args)
			}
		})
	}
}

func TestParseRoom(t *testing.T) {
	tests := []struct {
		in          string
		real, short int64
		live        bool
	}{
		{"5440", 5440, 0, false},
		{"5440:1", 5440, 1, false},
		{"5440:1:live", 5440, 1, true},
		{"21452505:live", 21452505, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			c, err := parseRoom(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if c.RoomID != tt.real || c.ShortID != tt.short || c.Live != tt.live {
				t.Errorf("got %d/%d live %v, want %d/%d live %v", c.RoomID, c.ShortID, c.Live, tt.real, tt.short, tt.live)
			}
		})
	}
}
