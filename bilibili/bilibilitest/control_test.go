package bilibilitest

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// post POSTs to the control API and returns status and reply.
func post(t *testing.T, u, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestControlAPI(t *testing.T) {
	s := Start(t, Config{Speed: 10})
	base := s.URL() + "/_sim/"
	if status, reply := post(t, base+"rooms", `{"RoomID":5440,"ShortID":1,"Title":"演示"}`); status != 200 {
		t.Fatalf("add room: %d %s", status, reply)
	}
	room := s.Room(1)
	if room == nil || room.ID() != 5440 {
		t.Fatalf("Room(1) = %v after POST /_sim/rooms, want room 5440", room)
	}
	token, _ := danmakuToken(t, s, 5440)
	c := dialDanmaku(t, s, 5440, token)
	c.expectAuthOK()
	waitFor(t, time.Second, "connection counted", func() bool { return s.DanmakuConnections(5440) == 1 })

	tests := []struct {
		name   string
		action string
		status int
		check  func(t *testing.T)
	}{
		{"live", "live", 200, func(t *testing.T) {
			c.nextMessage("LIVE", 2*time.Second)
			if room.LiveKey() == "" {
				t.Error("no live key after live")
			}
		}},
		{"danmaku", "danmaku?text=hello", 200, func(t *testing.T) {
			if body := c.nextMessage("DANMU_MSG", 2*time.Second); !strings.Contains(string(body), `"hello"`) {
				t.Errorf("DANMU_MSG %s, want the text hello", body)
			}
		}},
		{"title", "title?title=abc", 200, func(t *testing.T) {
			if body := c.nextMessage("ROOM_CHANGE", 2*time.Second); !strings.Contains(string(body), `"title":"abc"`) {
				t.Errorf("ROOM_CHANGE %s, want title abc", body)
			}
		}},
		{"sc", "sc?text=hi&price=50", 200, func(t *testing.T) { c.nextMessage("SUPER_CHAT_MESSAGE", 2*time.Second) }},
		{"gift", "gift?name=x&num=2", 200, func(t *testing.T) { c.nextMessage("SEND_GIFT", 2*time.Second) }},
		{"guard", "guard?level=1", 200, func(t *testing.T) { c.nextMessage("GUARD_BUY", 2*time.Second) }},
		{"notfound", "notfound?ms=60000", 200, func(t *testing.T) {
			if resp := openStream(t, streamURL(t, s, 5440)); resp.StatusCode != http.StatusNotFound {
				t.Errorf("stream status %d after notfound, want 404", resp.StatusCode)
			}
		}},
		{"end", "end", 200, func(t *testing.T) {
			c.nextMessage("PREPARING", 2*time.Second)
			if room.LiveKey() != "" {
				t.Error("still live after end")
			}
		}},
		{"unknown action", "explode", 404, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, reply := post(t, base+"rooms/5440/"+tt.action, "")
			if status != tt.status {
				t.Fatalf("status %d (%s), want %d", status, reply, tt.status)
			}
			if tt.check != nil {
				tt.check(t)
			}
		})
	}

	if status, _ := post(t, base+"rooms/999/live", ""); status != 404 {
		t.Errorf("unknown room: status %d, want 404", status)
	}
	if status, _ := post(t, base+"faults/risk?path="+PathRoomInit+"&n=1", ""); status != 200 {
		t.Errorf("risk fault: status %d, want 200", status)
	}
	if _, env := getJSON(t, s.URL()+PathRoomInit+"?id=5440", ""); env.Code != -352 {
		t.Errorf("room_init after the risk fault: code %d, want -352", env.Code)
	}
	if status, _ := post(t, base+"faults/drop", ""); status != 200 {
		t.Errorf("drop: status %d, want 200", status)
	}
	if _, err := c.readFrame(2 * time.Second); err == nil {
		t.Error("websocket still open after faults/drop")
	}

	resp, err := http.Get(base + "rooms")
	if err != nil {
		t.Fatal(err)
	}
	list, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(list), "5440 (short 1)") || !strings.Contains(string(list), `"abc"`) || !strings.Contains(string(list), "offline") {
		t.Errorf("room list %q, want room 5440 with its title and state", list)
	}
}

func TestCloseWithOpenConnections(t *testing.T) {
	s, err := NewServer(Config{Speed: 10})
	if err != nil {
		t.Fatal(err)
	}
	room := s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
	// A stream nobody reads (its writes block once buffers fill), a stream
	// being read, a stalled one, and an authenticated websocket.
	openStream(t, streamURL(t, s, 5440)) // never read
	read := mustStream(t, s, 5440)
	room.StallStream(time.Minute)
	token, _ := danmakuToken(t, s, 5440)
	c := dialDanmaku(t, s, 5440, token)
	c.expectAuthOK()
	waitFor(t, time.Second, "streams open", func() bool { return room.OpenStreams() == 2 })

	closed := make(chan struct{})
	start := time.Now()
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
		t.Fatal("Close still running after 3s")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Close took %s, want well under a second", took)
	}
	if err := read.readErr(t, 2*time.Second); err == nil {
		t.Error("stream read succeeded after Close")
	}
	if _, err := c.readFrame(2 * time.Second); err == nil {
		t.Error("websocket read succeeded after Close")
	}
	if _, err := http.Get(s.URL() + PathNav); err == nil {
		t.Error("request succeeded after Close, want the listener closed")
	}
	s.Close() // a second Close is harmless
	room.GoLive()
	room.EndLiveStreamFirst(time.Millisecond) // controls after Close do not start goroutines
}

func TestManyStreamsAtSpeed(t *testing.T) {
	// Several rooms streaming at Speed 8 to several readers each, while
	// controls run: the race detector checks the locking, and every reader
	// must keep up.
	s := Start(t, Config{Speed: 8})
	var rooms []*Room
	for i := range 3 {
		rooms = append(rooms, s.AddRoom(RoomConfig{RoomID: int64(100 + i), Live: true}))
	}
	done := make(chan int, 6)
	for i := range 6 {
		fs := mustStream(t, s, rooms[i%3].ID())
		go func() {
			n := 0
			for {
				if _, err := fs.r.ReadTag(); err != nil {
					done <- n
					return
				}
				n++
			}
		}()
	}
	for _, r := range rooms {
		r.ChangeResolution()
		r.JumpTimestamps(time.Second)
		r.SetTitle("t")
	}
	time.Sleep(500 * time.Millisecond) // 4 s of stream
	for _, r := range rooms {
		r.CutStream()
	}
	for range 6 {
		// 4 s of media is about 120 video and 170 audio tags, plus the
		// GOP burst at the start.
		if n := <-done; n < 200 {
			t.Errorf("a reader got %d tags in 4 s of stream, want about 300", n)
		}
	}
}
