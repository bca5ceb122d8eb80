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

func TestRunServesRoomInit(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-speed", "4", "-room", "5440:1:live", "-room", "21452505"}, w, io.Discard)
		w.Close()
	}()

	// The banner says where the simulator listens.
	var base string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if _, after, ok := strings.Cut(sc.Text(), "BILIBILI_API_URL="); ok {
			base, _, _ = strings.Cut(after, " ")
			break
		}
	}
	go io.Copy(io.Discard, out)
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("banner gave BILIBILI_API_URL %q, want http://127.0.0.1:PORT", base)
	}

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
