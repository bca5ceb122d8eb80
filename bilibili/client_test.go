package bilibili

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAPI answers every path with the body registered for it and records
// the headers of each request.
type fakeAPI struct {
	mu      sync.Mutex
	bodies  map[string]string
	status  map[string]int
	headers []http.Header
}

func newFakeAPI(t *testing.T, bodies map[string]string) (*httptest.Server, *fakeAPI) {
	f := &fakeAPI{bodies: bodies, status: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.headers = append(f.headers, r.Header.Clone())
		body, ok := f.bodies[r.URL.Path]
		status := f.status[r.URL.Path]
		f.mu.Unlock()
		if body == "hang" {
			<-r.Context().Done()
			return
		}
		if !ok {
			http.NotFound(w, r)
			return
		}
		if status != 0 {
			w.WriteHeader(status)
		}
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv, f
}

func TestClientSendsBrowserHeadersAndCookie(t *testing.T) {
	srv, f := newFakeAPI(t, map[string]string{
		"/room/v1/Room/room_init": `{"code":0,"msg":"ok","message":"ok","data":{"room_id":5440,"short_id":1,"uid":9,"live_status":1}}`,
	})
	c := NewClient(Options{Endpoints: SingleEndpoint(srv.URL), Cookie: "SESSDATA=secret; DedeUserID=777"}, srv.Client(), nil)
	got, err := c.ResolveRoom(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if got != (RoomInit{RoomID: 5440, ShortID: 1, UID: 9, LiveStatus: Live}) {
		t.Errorf("ResolveRoom = %+v", got)
	}
	h := f.headers[0]
	for name, want := range map[string]string{
		"User-Agent": UserAgent,
		"Referer":    "https://live.bilibili.com/",
		"Origin":     "https://live.bilibili.com",
		"Cookie":     "SESSDATA=secret; DedeUserID=777",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if c.UID() != 777 {
		t.Errorf("UID = %d, want 777 from DedeUserID", c.UID())
	}
}

func TestClientErrors(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		status int
		check  func(error) bool
	}{
		{"room not found with data []", `{"code":60004,"msg":"直播间不存在","message":"直播间不存在","data":[]}`, 0,
			func(err error) bool { return errors.Is(err, ErrRoomNotFound) }},
		{"risk control", `{"code":-352,"message":"-352","ttl":1,"data":{"v_voucher":"x"}}`, 0,
			func(err error) bool { return errors.Is(err, ErrRiskControl) }},
		{"request blocked", `{"code":-412,"message":"请求被拦截","ttl":1,"data":null}`, 0,
			func(err error) bool { return errors.Is(err, ErrRiskControl) }},
		{"http 412 with html", `<html>blocked</html>`, http.StatusPreconditionFailed,
			func(err error) bool { return errors.Is(err, ErrRiskControl) }},
		{"other code keeps code and message", `{"code":19002000,"message":"获取初始化数据失败","data":null}`, 0,
			func(err error) bool {
				var e *APIError
				return errors.As(err, &e) && e.Code == 19002000 && e.Message == "获取初始化数据失败" &&
					!errors.Is(err, ErrRoomNotFound) && !errors.Is(err, ErrRiskControl)
			}},
		{"malformed json", `{"code":0,"data":`, 0,
			func(err error) bool { return errors.Is(err, ErrProtocol) }},
		{"data of the wrong shape", `{"code":0,"data":[1,2]}`, 0,
			func(err error) bool { return errors.Is(err, ErrProtocol) }},
		{"server error", `oops`, http.StatusBadGateway,
			func(err error) bool {
				var e *APIError
				return errors.As(err, &e) && e.HTTPStatus == http.StatusBadGateway
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, f := newFakeAPI(t, map[string]string{"/room/v1/Room/room_init": tt.body})
			f.status["/room/v1/Room/room_init"] = tt.status
			c := NewClient(Options{Endpoints: SingleEndpoint(srv.URL)}, srv.Client(), nil)
			_, err := c.ResolveRoom(context.Background(), 1)
			if err == nil || !tt.check(err) {
				t.Errorf("ResolveRoom error = %v", err)
			}
		})
	}
}

func TestClientTimeout(t *testing.T) {
	srv, _ := newFakeAPI(t, map[string]string{"/xlive/web-room/v1/index/getInfoByRoom": "hang"})
	c := NewClient(Options{Endpoints: SingleEndpoint(srv.URL), Timeout: 100 * time.Millisecond}, srv.Client(), nil)
	start := time.Now()
	_, err := c.RoomInfo(context.Background(), 1)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("RoomInfo from a hung server = %v, want a deadline error", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("timeout took %s", took)
	}
}

func TestPlayInfoNullIsNotLive(t *testing.T) {
	srv, _ := newFakeAPI(t, map[string]string{
		"/xlive/web-room/v2/index/getRoomPlayInfo": `{"code":0,"message":"0","ttl":1,"data":{"room_id":5440,"live_status":0,"playurl_info":null}}`,
	})
	c := NewClient(Options{Endpoints: SingleEndpoint(srv.URL)}, srv.Client(), nil)
	if _, err := c.PlayInfo(context.Background(), 5440, 10000); !errors.Is(err, ErrNotLive) {
		t.Errorf("PlayInfo = %v, want ErrNotLive", err)
	}
}

func TestDanmuInfoSecureURLs(t *testing.T) {
	// Against https hosts the websocket is wss on wss_port.
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/x/frontend/finger/spi":
			w.Write([]byte(`{"code":0,"data":{"b_3":"B3infoc"}}`))
		case "/x/web-interface/nav":
			w.Write([]byte(`{"code":-101,"data":{"wbi_img":{"img_url":"https://i0.hdslb.com/bfs/wbi/7cd084941338484aae1ad9425b84077c.png","sub_url":"https://i0.hdslb.com/bfs/wbi/4932caff0ff746eab6f01bf08b70ac45.png"}}}`))
		default:
			if r.URL.Query().Get("w_rid") == "" || !strings.Contains(r.Header.Get("Cookie"), "buvid3=B3infoc") {
				w.Write([]byte(`{"code":-352}`))
				return
			}
			w.Write([]byte(`{"code":0,"data":{"token":"T","host_list":[{"host":"zj-cn-live-comet.chat.bilibili.com","port":2243,"wss_port":443,"ws_port":2244},{"host":"broadcastlv.chat.bilibili.com","port":2243,"wss_port":443,"ws_port":2244}]}}`))
		}
	}))
	defer srv.Close()
	c := NewClient(Options{Endpoints: SingleEndpoint(srv.URL)}, srv.Client(), nil)
	info, err := c.DanmuInfo(context.Background(), 5440)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"wss://zj-cn-live-comet.chat.bilibili.com:443/sub", "wss://broadcastlv.chat.bilibili.com:443/sub"}
	if strings.Join(info.URLs, " ") != strings.Join(want, " ") {
		t.Errorf("URLs = %q, want %q (fallback host not repeated)", info.URLs, want)
	}
}

func TestNewHTTPClientNetwork(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	for _, tt := range []struct {
		network string
		works   bool
	}{{"any", true}, {"", true}, {"ipv4", true}, {"ipv6", false}} {
		hc, err := NewHTTPClient(tt.network)
		if err != nil {
			t.Fatalf("NewHTTPClient(%q): %v", tt.network, err)
		}
		resp, err := hc.Get(srv.URL) // an IPv4 loopback address
		if err == nil {
			resp.Body.Close()
		}
		if (err == nil) != tt.works {
			t.Errorf("network %q to %s: err = %v, want success %v", tt.network, srv.URL, err, tt.works)
		}
		var opErr *net.OpError
		if !tt.works && !errors.As(err, &opErr) {
			t.Errorf("network %q: error %v is not a dial error", tt.network, err)
		}
	}
	if _, err := NewHTTPClient("ipv5"); err == nil || !strings.Contains(err.Error(), "ipv4") {
		t.Errorf("NewHTTPClient(ipv5) = %v, want an error naming the choices", err)
	}
}

// An answer in the shape get_status_info_by_uids sends (fields as the
// public API documentation lists them): data keyed by uid as a string,
// live_time a unix second, live_status 2 for a replay loop.
func TestRoomsOfAnchorsDecodesBilibiliShape(t *testing.T) {
	const answer = `{"code":0,"msg":"success","message":"success","data":{
	"672328094":{"title":"晚安","room_id":22637261,"uid":672328094,"online":0,"live_time":0,"live_status":2,
	  "short_id":0,"area":6,"area_name":"生活娱乐","area_v2_id":371,"area_v2_name":"虚拟日常","area_v2_parent_name":"虚拟主播",
	  "area_v2_parent_id":9,"uname":"嘉然今天吃什么","face":"https://i0.hdslb.com/bfs/face/x.jpg","tag_name":"","tags":"",
	  "cover_from_user":"https://i0.hdslb.com/bfs/live/new_room_cover/c.jpg","keyframe":"","lock_till":"0000-00-00 00:00:00",
	  "hidden_till":"0000-00-00 00:00:00","broadcast_type":0},
	"322892":{"title":"直播中","room_id":7734200,"uid":322892,"online":5000,"live_time":1764600000,"live_status":1,
	  "short_id":0,"area":6,"area_name":"单机","area_v2_id":236,"area_v2_name":"主机游戏","area_v2_parent_name":"单机游戏",
	  "area_v2_parent_id":6,"uname":"某主播","face":"","tag_name":"","tags":"","cover_from_user":"https://i0.hdslb.com/c2.jpg",
	  "keyframe":"","lock_till":"0000-00-00 00:00:00","hidden_till":"0000-00-00 00:00:00","broadcast_type":0}}}`
	srv, _ := newFakeAPI(t, map[string]string{"/room/v1/Room/get_status_info_by_uids": answer})
	c := NewClient(Options{Endpoints: SingleEndpoint(srv.URL)}, nil, nil)
	got, err := c.RoomsOfAnchors(context.Background(), []int64{672328094, 322892})
	if err != nil {
		t.Fatal(err)
	}
	replay, live := got[672328094], got[322892]
	if replay.RoomID != 22637261 || replay.LiveStatus != Rotation || !replay.LiveStartTime.IsZero() || replay.AreaName != "虚拟日常" || replay.ParentAreaName != "虚拟主播" || replay.AnchorName != "嘉然今天吃什么" {
		t.Errorf("replay loop = %+v", replay)
	}
	if live.RoomID != 7734200 || live.LiveStatus != Live || !live.LiveStartTime.Equal(time.Unix(1764600000, 0)) || live.Cover != "https://i0.hdslb.com/c2.jpg" {
		t.Errorf("live room = %+v", live)
	}

	empty, _ := newFakeAPI(t, map[string]string{"/room/v1/Room/get_status_info_by_uids": `{"code":0,"msg":"success","message":"success","data":[]}`})
	c = NewClient(Options{Endpoints: SingleEndpoint(empty.URL)}, nil, nil)
	if got, err := c.RoomsOfAnchors(context.Background(), []int64{1}); err != nil || len(got) != 0 {
		t.Errorf("no anchor known: %v, %v; want an empty map", got, err)
	}
}

// One entry in a shape roomrec cannot read costs that anchor only: the
// others are still answered.
func TestRoomsOfAnchorsSkipsAnOddEntry(t *testing.T) {
	const answer = `{"code":0,"msg":"success","message":"success","data":{
	"1":{"title":"好","room_id":11,"uid":1,"live_time":0,"live_status":0,"short_id":0,"uname":"a","cover_from_user":""},
	"2":{"title":"怪","room_id":"twelve","uid":2,"live_status":1,"short_id":"","uname":"b"}}}`
	srv, _ := newFakeAPI(t, map[string]string{"/room/v1/Room/get_status_info_by_uids": answer})
	c := NewClient(Options{Endpoints: SingleEndpoint(srv.URL)}, nil, nil)
	got, err := c.RoomsOfAnchors(context.Background(), []int64{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[1].RoomID != 11 {
		t.Errorf("got %+v, want anchor 1's room only", got)
	}
}
