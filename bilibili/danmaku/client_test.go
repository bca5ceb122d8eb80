package danmaku_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"roomrec/bilibili"
	"roomrec/bilibili/bilibilitest"
	"roomrec/bilibili/danmaku"
)

// dialSim starts the simulator and returns a danmaku config for its room,
// with the token and URLs from the real client.
func dialSim(t *testing.T) (*bilibilitest.Server, *bilibilitest.Room, danmaku.Config) {
	t.Helper()
	sim := bilibilitest.Start(t, bilibilitest.Config{})
	room := sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, ShortID: 1})
	c := bilibili.NewClient(bilibili.Options{Endpoints: bilibili.SingleEndpoint(sim.URL())}, &http.Client{}, nil)
	info, err := c.DanmuInfo(context.Background(), 5440)
	if err != nil {
		t.Fatal(err)
	}
	return sim, room, danmaku.Config{
		URLs: info.URLs, RoomID: 5440, Token: info.Token, Buvid: info.Buvid, Header: c.WebsocketHeader(),
		HeartbeatInterval: 50 * time.Millisecond, ReadTimeout: 2 * time.Second,
	}
}

// dial connects and waits until the simulator has registered the
// connection for the room, so that pushes sent next are not missed.
func dial(t *testing.T, ctx context.Context, sim *bilibilitest.Server, cfg danmaku.Config) *danmaku.Conn {
	t.Helper()
	conn, err := danmaku.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	deadline := time.Now().Add(3 * time.Second)
	for sim.DanmakuConnections(5440) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("simulator never registered the connection")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return conn
}

// run runs conn in the background, sending its events to a channel.
func run(ctx context.Context, conn *danmaku.Conn) (<-chan danmaku.Event, <-chan error) {
	events := make(chan danmaku.Event, 100)
	done := make(chan error, 1)
	go func() { done <- conn.Run(ctx, func(e danmaku.Event) { events <- e }) }()
	return events, done
}

func next[T danmaku.Event](t *testing.T, events <-chan danmaku.Event) T {
	t.Helper()
	timeout := time.After(3 * time.Second)
	for {
		select {
		case e := <-events:
			if v, ok := e.(T); ok {
				return v
			}
		case <-timeout:
			var zero T
			t.Fatalf("no %T event", zero)
			return zero
		}
	}
}

func TestClientReceivesEvents(t *testing.T) {
	sim, room, cfg := dialSim(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn := dial(t, ctx, sim, cfg)
	events, _ := run(ctx, conn)
	if n := sim.DanmakuConnections(5440); n != 1 {
		t.Fatalf("simulator sees %d authenticated connections, want 1", n)
	}

	// Heartbeats go out every 50 ms; each gets a popularity reply.
	if hb := next[danmaku.HeartbeatReply](t, events); hb.Popularity == 0 {
		t.Error("heartbeat reply without popularity")
	}
	room.GoLive()
	first := next[danmaku.Live](t, events)
	second := next[danmaku.Live](t, events)
	if first.LiveKey == "" || first.LiveTime.IsZero() || second.LiveKey != "" || first.RoomID != 5440 {
		t.Errorf("LIVE pair = %+v, %+v, want keyed then bare", first, second)
	}
	room.SendDanmaku(bilibilitest.Danmaku{UID: 7, Uname: "u", Text: "你好"})
	if d := next[danmaku.Danmaku](t, events); d.Text != "你好" || d.UID != 7 || d.Uname != "u" {
		t.Errorf("danmaku = %+v", d)
	}
	room.EndLive()
	if p := next[danmaku.Preparing](t, events); p.RoomID != 5440 {
		t.Errorf("PREPARING = %+v", p)
	}
}

func TestClientWantFiltersBeforeParsing(t *testing.T) {
	sim, room, cfg := dialSim(t)
	cfg.Want = func(cmd string) bool { return cmd == "PREPARING" }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn := dial(t, ctx, sim, cfg)
	events, _ := run(ctx, conn)
	room.SendDanmaku(bilibilitest.Danmaku{Text: "skip me"})
	room.GoLive()
	room.EndLive()
	next[danmaku.Preparing](t, events)
	for len(events) > 0 {
		switch e := (<-events).(type) {
		case danmaku.Danmaku, danmaku.Live:
			t.Errorf("unwanted event delivered: %#v", e)
		}
	}
}

func TestClientAuthRejected(t *testing.T) {
	_, _, cfg := dialSim(t)
	cfg.Token = "stale"
	_, err := danmaku.Dial(context.Background(), cfg)
	if !errors.Is(err, danmaku.ErrAuthRejected) {
		t.Errorf("Dial with a bad token = %v, want ErrAuthRejected", err)
	}
}

func TestClientTriesNextURL(t *testing.T) {
	_, _, cfg := dialSim(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "ws://" + ln.Addr().String() + "/sub"
	ln.Close()
	cfg.URLs = append([]string{dead}, cfg.URLs...)
	conn, err := danmaku.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if conn.URL() != cfg.URLs[1] {
		t.Errorf("connected to %s, want the second URL", conn.URL())
	}
}

func TestClientReportsDroppedConnection(t *testing.T) {
	sim, _, cfg := dialSim(t)
	conn, err := danmaku.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, done := run(context.Background(), conn)
	sim.DropDanmakuConnections()
	select {
	case err := <-done:
		if !errors.Is(err, danmaku.ErrConnectionLost) {
			t.Errorf("Run = %v, want ErrConnectionLost", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not notice the dropped connection")
	}
}

func TestClientReadTimeout(t *testing.T) {
	_, _, cfg := dialSim(t)
	// No heartbeats means no replies: the connection must be declared dead
	// after ReadTimeout.
	cfg.HeartbeatInterval = time.Hour
	cfg.ReadTimeout = 200 * time.Millisecond
	conn, err := danmaku.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The first heartbeat goes out at once; drain its reply, then silence.
	_, done := run(context.Background(), conn)
	select {
	case err := <-done:
		if !errors.Is(err, danmaku.ErrConnectionLost) {
			t.Errorf("Run = %v, want ErrConnectionLost", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("a silent connection was not declared dead")
	}
}

func TestClientCancel(t *testing.T) {
	_, _, cfg := dialSim(t)
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := danmaku.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, done := run(ctx, conn)
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Run did not stop promptly on cancel")
	}
}
