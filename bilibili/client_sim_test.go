package bilibili_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"roomrec/bilibili"
	"roomrec/bilibili/bilibilitest"
)

// newSim starts the simulator with one room (real 5440, short 1) and a
// client pointed at it.
func newSim(t *testing.T, live bool) (*bilibilitest.Server, *bilibilitest.Room, *bilibili.Client) {
	t.Helper()
	sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 8})
	room := sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, ShortID: 1, UID: 9617619, Anchor: "主播", Title: "标题", Live: live})
	c := bilibili.NewClient(bilibili.Options{Endpoints: bilibili.SingleEndpoint(sim.URL())}, &http.Client{}, nil)
	return sim, room, c
}

func TestResolveRoom(t *testing.T) {
	_, _, c := newSim(t, false)
	ctx := context.Background()
	for _, id := range []int64{1, 5440} {
		got, err := c.ResolveRoom(ctx, id)
		if err != nil {
			t.Fatalf("ResolveRoom(%d): %v", id, err)
		}
		if got.RoomID != 5440 || got.ShortID != 1 || got.UID != 9617619 || got.LiveStatus != bilibili.Offline {
			t.Errorf("ResolveRoom(%d) = %+v, want real 5440, short 1, offline", id, got)
		}
	}
	_, err := c.ResolveRoom(ctx, 42)
	if !errors.Is(err, bilibili.ErrRoomNotFound) {
		t.Fatalf("ResolveRoom(unknown) = %v, want ErrRoomNotFound", err)
	}
	var apiErr *bilibili.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != 60004 {
		t.Errorf("error %v does not carry code 60004", err)
	}
}

func TestRoomInfo(t *testing.T) {
	_, room, c := newSim(t, false)
	ctx := context.Background()
	info, err := c.RoomInfo(ctx, 5440)
	if err != nil {
		t.Fatal(err)
	}
	if info.Title != "标题" || info.AnchorName != "主播" || info.LiveStatus != bilibili.Offline || !info.LiveStartTime.IsZero() || info.Cover == "" || info.AreaName == "" {
		t.Errorf("offline RoomInfo = %+v", info)
	}
	room.GoLive()
	info, err = c.RoomInfo(ctx, 5440)
	if err != nil {
		t.Fatal(err)
	}
	if info.LiveStatus != bilibili.Live || time.Since(info.LiveStartTime) > time.Minute {
		t.Errorf("live RoomInfo = %+v, want live since just now", info)
	}
}

func TestPlayInfo(t *testing.T) {
	sim, room, c := newSim(t, false)
	ctx := context.Background()
	if _, err := c.PlayInfo(ctx, 5440, 10000); !errors.Is(err, bilibili.ErrNotLive) {
		t.Fatalf("PlayInfo offline = %v, want ErrNotLive", err)
	}
	room.GoLive()
	sim.SetPlayHosts("https://xy1x2x3x4xy.mcdn.bilivideo.cn:486", "http://127.0.0.1:1", sim.URL())
	info, err := c.PlayInfo(ctx, 5440, 400)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := info.FLV()
	if !ok {
		t.Fatalf("no FLV stream in %+v", info)
	}
	if info.Streams[0].Protocol != "http_stream" || info.Streams[0].Format != "flv" || info.Streams[0].Codec != "avc" {
		t.Errorf("first stream = %s/%s/%s, want http_stream/flv/avc", info.Streams[0].Protocol, info.Streams[0].Format, info.Streams[0].Codec)
	}
	var hls int
	for _, st := range info.Streams {
		if st.Protocol == "http_hls" {
			hls++
		}
	}
	if hls == 0 {
		t.Error("HLS streams were not kept")
	}
	if s.Qn != 400 || len(s.AcceptQn) == 0 {
		t.Errorf("qn = %d (accept %v), want the 400 asked for", s.Qn, s.AcceptQn)
	}
	if len(s.URLs) != 3 || !strings.HasPrefix(s.URLs[0], "http://127.0.0.1:1/") || !strings.HasPrefix(s.URLs[1], sim.URL()) || !strings.Contains(s.URLs[2], ".mcdn.") {
		t.Errorf("URLs = %q, want Bilibili's order with the .mcdn. host last", s.URLs)
	}
	// The URL really serves the stream.
	resp, err := http.Get(s.URLs[1])
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("stream URL answered %s", resp.Status)
	}
}

func TestDanmuInfoSignsAndCaches(t *testing.T) {
	sim, _, c := newSim(t, false)
	ctx := context.Background()
	for range 2 {
		info, err := c.DanmuInfo(ctx, 5440)
		if err != nil {
			t.Fatal(err)
		}
		if info.Token == "" || info.Buvid == "" || len(info.URLs) != 2 {
			t.Fatalf("DanmuInfo = %+v", info)
		}
		if want := strings.Replace(sim.URL(), "http://", "ws://", 1) + "/sub"; info.URLs[0] != want {
			t.Errorf("first URL = %q, want %q against a plain-http API", info.URLs[0], want)
		}
		if info.URLs[1] != "ws://broadcastlv.chat.bilibili.com:2244/sub" {
			t.Errorf("fallback URL = %q", info.URLs[1])
		}
	}
	if n := sim.Requests(bilibilitest.PathSpi); n != 1 {
		t.Errorf("spi asked %d times, want buvid3 fetched once", n)
	}
	if n := sim.Requests(bilibilitest.PathNav); n != 1 {
		t.Errorf("nav asked %d times, want WBI keys cached", n)
	}
	if !strings.Contains(c.WebsocketHeader().Get("Cookie"), "buvid3=") {
		t.Errorf("websocket header %v lacks buvid3", c.WebsocketHeader())
	}
}

func TestRiskControl(t *testing.T) {
	sim, _, c := newSim(t, false)
	ctx := context.Background()
	if _, err := c.DanmuInfo(ctx, 5440); err != nil {
		t.Fatal(err)
	}
	sim.RiskControl(bilibilitest.PathDanmuInfo, 1)
	_, err := c.DanmuInfo(ctx, 5440)
	if !errors.Is(err, bilibili.ErrRiskControl) {
		t.Fatalf("DanmuInfo after -352 = %v, want ErrRiskControl", err)
	}
	if _, err := c.DanmuInfo(ctx, 5440); err != nil {
		t.Fatalf("DanmuInfo after the -352 passed = %v", err)
	}
	if n := sim.Requests(bilibilitest.PathNav); n != 2 {
		t.Errorf("nav asked %d times, want the WBI keys dropped after -352 and fetched again", n)
	}

	sim.HTTP412("", 1)
	_, err = c.RoomInfo(ctx, 5440)
	var apiErr *bilibili.APIError
	if !errors.Is(err, bilibili.ErrRiskControl) || !errors.As(err, &apiErr) || apiErr.HTTPStatus != http.StatusPreconditionFailed {
		t.Errorf("RoomInfo after 412 = %v, want ErrRiskControl with HTTP 412", err)
	}
	sim.RiskControl(bilibilitest.PathPlayInfo, 1)
	if _, err := c.PlayInfo(ctx, 5440, 10000); !errors.Is(err, bilibili.ErrRiskControl) || errors.Is(err, bilibili.ErrNotLive) {
		t.Errorf("PlayInfo after -352 = %v, want ErrRiskControl only", err)
	}
}

func TestSimulatorChecksSignatureAndBuvid(t *testing.T) {
	sim, _, _ := newSim(t, false)
	var spi struct {
		Data struct {
			B3 string `json:"b_3"`
		}
	}
	getJSON(t, sim.URL()+bilibilitest.PathSpi, "", &spi)
	mixin := bilibili.WBIMixinKey("7cd084941338484aae1ad9425b84077c", "4932caff0ff746eab6f01bf08b70ac45")
	params := url.Values{"id": {"5440"}, "type": {"0"}, "web_location": {"444.8"}}
	signed := bilibili.SignWBI(params, mixin, time.Now())
	base := sim.URL() + bilibilitest.PathDanmuInfo + "?"
	tests := []struct {
		name, query, cookie string
		want                int
	}{
		{"signed with buvid3", signed, "buvid3=" + spi.Data.B3, 0},
		{"unsigned", params.Encode(), "buvid3=" + spi.Data.B3, -352},
		{"tampered", strings.Replace(signed, "id=5440", "id=5441", 1), "buvid3=" + spi.Data.B3, -352},
		{"no buvid3", signed, "", -352},
		{"buvid3 never issued", signed, "buvid3=ABC", -352},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body struct{ Code int }
			getJSON(t, base+tt.query, tt.cookie, &body)
			if body.Code != tt.want {
				t.Errorf("code = %d, want %d", body.Code, tt.want)
			}
		})
	}
}

func getJSON(t *testing.T, u, cookie string, v any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// One call answers for many anchors; anchors without a room are left out,
// and a replay loop is not live.
func TestRoomsOfAnchors(t *testing.T) {
	sim, room, c := newSim(t, true)
	sim.AddRoom(bilibilitest.RoomConfig{RoomID: 7777, UID: 42, Title: "离线"})
	ctx := context.Background()
	got, err := c.RoomsOfAnchors(ctx, []int64{9617619, 42, 31337})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d rooms (%+v), want 2: the unknown anchor left out", len(got), got)
	}
	live := got[9617619]
	if live.RoomID != 5440 || live.ShortID != 1 || live.LiveStatus != bilibili.Live || live.Title != "标题" || live.AnchorName != "主播" || live.Cover == "" || live.AreaName == "" || live.LiveStartTime.IsZero() {
		t.Errorf("live room = %+v", live)
	}
	if off := got[42]; off.RoomID != 7777 || off.LiveStatus != bilibili.Offline || !off.LiveStartTime.IsZero() || off.Title != "离线" {
		t.Errorf("offline room = %+v", off)
	}
	room.EndLive()
	none, err := c.RoomsOfAnchors(ctx, []int64{31337})
	if err != nil || len(none) != 0 {
		t.Errorf("no known anchor: %v, %v; want an empty map", none, err)
	}
	if _, err := c.RoomsOfAnchors(ctx, make([]int64, bilibili.MaxAnchorsPerCall+1)); err == nil {
		t.Error("more anchors than one call takes: no error")
	}
	if n := sim.Requests(bilibilitest.PathRoomsOfAnchors); n != 2 {
		t.Errorf("%d bulk requests, want 2 (the oversized one never sent)", n)
	}
}
