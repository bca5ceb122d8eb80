package bilibilitest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"roomrec/bilibili"
)

// The documented shapes (notes/bilibili-shapes.md, from the real service),
// trimmed to valid JSON. The simulator's answers must have every key these
// have, with the same JSON kind.
const (
	docRoomInit = `{"code":0,"msg":"ok","message":"ok","data":{"room_id":5440,"short_id":1,"uid":9617619,"need_p2p":0,"is_hidden":false,"is_locked":false,"is_portrait":false,"live_status":1,"hidden_till":0,"lock_till":0,"encrypted":false,"pwd_verified":false,"live_time":1732400000,"room_shield":0,"is_sp":0,"special_type":0}}`
	docNotFound = `{"code":60004,"msg":"直播间不存在","message":"直播间不存在","data":[]}`
	docRoomInfo = `{"code":0,"message":"0","ttl":1,"data":{"room_info":{"uid":9617619,"room_id":5440,"short_id":1,"title":"...","cover":"https://i0.hdslb.com/bfs/live/new_room_cover/abc.jpg","tags":"","background":"","description":"","live_status":1,"live_start_time":1732400000,"live_screen_type":0,"lock_status":0,"lock_time":0,"hidden_status":0,"hidden_time":0,"area_id":236,"area_name":"主机游戏","parent_area_id":6,"parent_area_name":"单机游戏","keyframe":"https://i0.hdslb.com/bfs/live-key-frame/keyframe.jpg","special_type":0,"up_session":"","pk_status":0,"is_studio":false,"online":1234},"anchor_info":{"base_info":{"uname":"某主播","face":"https://i0.hdslb.com/bfs/face/x.jpg","gender":"女","official_info":{"role":0,"title":"","desc":""}},"live_info":{"level":20},"relation_info":{"attention":100000}},"watched_show":{"num":1234,"text_small":"1234","text_large":"1234人看过"}}}`
	docPlayInfo = `{"code":0,"message":"0","ttl":1,"data":{"room_id":5440,"short_id":1,"uid":9617619,"is_hidden":false,"is_locked":false,"is_portrait":false,"live_status":1,"hidden_till":0,"lock_till":0,"encrypted":false,"pwd_verified":true,"live_time":1732400000,"room_shield":0,"all_special_types":[],
 "playurl_info":{"conf_json":"{\"cdn_rate\":10000,\"report_interval_sec\":150}","playurl":{"cid":5440,
   "g_qn_desc":[{"qn":10000,"desc":"原画","hdr_desc":"","attr_desc":null}],
   "stream":[
    {"protocol_name":"http_stream","format":[{"format_name":"flv","codec":[{"codec_name":"avc","current_qn":10000,"accept_qn":[10000,400,250,150],"base_url":"/live-bvc/375028/live_9617619_bs_5440_bluray.flv?","url_info":[{"host":"https://cn-gddg-ct-01-01.bilivideo.com","extra":"expires=1732403600&qn=10000","stream_ttl":3600}],"hdr_qn":null,"dolby_type":0,"attr_name":""}]}]},
    {"protocol_name":"http_hls","format":[{"format_name":"ts","codec":[{"codec_name":"avc","current_qn":10000,"accept_qn":[10000,400,250,150],"base_url":"/live-bvc/375028/live_9617619_bs_5440_bluray/index.m3u8?","url_info":[{"host":"https://cn-gddg-ct-01-01.bilivideo.com","extra":"expires=1","stream_ttl":3600}],"hdr_qn":null,"dolby_type":0,"attr_name":""}]}]}
   ]},"p2p_data":{"p2p":false,"p2p_type":0,"m_p2p":false,"m_servers":null},"dolby_qn":null}}}`
	docDanmuInfo = `{"code":0,"message":"0","ttl":1,"data":{"group":"live","business_id":0,"refresh_row_factor":0.125,"refresh_rate":100,"max_delay":5000,"token":"long-opaque-token","host_list":[{"host":"zj-cn-live-comet.chat.bilibili.com","port":2243,"wss_port":443,"ws_port":2244}]}}`
	docRejected  = `{"code":-352,"message":"-352","ttl":1,"data":{"v_voucher":"voucher_abc"}}`
	docNav       = `{"code":-101,"message":"账号未登录","ttl":1,"data":{"isLogin":false,"wbi_img":{"img_url":"https://i0.hdslb.com/bfs/wbi/7cd084941338484aae1ad9425b84077c.png","sub_url":"https://i0.hdslb.com/bfs/wbi/4932caff0ff746eab6f01bf08b70ac45.png"}}}`
	docSpi       = `{"code":0,"data":{"b_3":"2D6CB7B4-0B8B-D3E9-49C5-A5A4B2C1D3E423456infoc","b_4":"..."},"message":"ok"}`
	doc412       = `{"code":-412,"message":"请求被拦截","ttl":1,"data":null}`
)

// shapeDiff lists where got lacks a key of want or has another JSON kind
// there. Arrays are compared by their first elements.
func shapeDiff(path string, want, got any) []string {
	kind := func(v any) string {
		switch v.(type) {
		case map[string]any:
			return "object"
		case []any:
			return "array"
		case nil:
			return "null"
		}
		return fmt.Sprintf("%T", v)
	}
	if kind(want) != kind(got) {
		return []string{fmt.Sprintf("%s: got %s, want %s", path, kind(got), kind(want))}
	}
	var diffs []string
	switch w := want.(type) {
	case map[string]any:
		g := got.(map[string]any)
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				diffs = append(diffs, path+"."+k+": missing")
				continue
			}
			diffs = append(diffs, shapeDiff(path+"."+k, wv, gv)...)
		}
	case []any:
		g := got.([]any)
		if len(w) > 0 && len(g) > 0 {
			diffs = append(diffs, shapeDiff(path+"[0]", w[0], g[0])...)
		}
	}
	return diffs
}

// fetch GETs url with the buvid3 cookie if any and returns status and body.
func fetch(t *testing.T, u, buvid string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if buvid != "" {
		req.AddCookie(&http.Cookie{Name: "buvid3", Value: buvid})
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func TestAPIShapes(t *testing.T) {
	s := Start(t, Config{})
	s.AddRoom(RoomConfig{RoomID: 5440, ShortID: 1, UID: 9617619, Live: true})
	s.AddRoom(RoomConfig{RoomID: 21452505})
	buvid := buvid3(t, s)
	key := mixinKey(t, s)
	u := s.URL()
	tests := []struct {
		name   string
		url    string
		doc    string
		status int
	}{
		{"room_init by short id", u + PathRoomInit + "?id=1", docRoomInit, 200},
		{"room_init offline", u + PathRoomInit + "?id=21452505", docRoomInit, 200},
		{"room_init unknown", u + PathRoomInit + "?id=999", docNotFound, 200},
		{"getInfoByRoom", u + PathRoomInfo + "?room_id=5440", docRoomInfo, 200},
		{"getInfoByRoom unknown", u + PathRoomInfo + "?room_id=999", docNotFound, 200},
		{"getRoomPlayInfo live", u + PathPlayInfo + "?room_id=5440&protocol=0,1&format=0,1,2&codec=0,1&qn=10000&platform=web&ptype=8&dolby=5&panorama=1", docPlayInfo, 200},
		{"getDanmuInfo signed", danmuInfoURL(s, 5440, key), docDanmuInfo, 200},
		{"getDanmuInfo unsigned", u + PathDanmuInfo + "?id=5440&type=0", docRejected, 200},
		{"nav", u + PathNav, docNav, 200},
		{"spi", u + PathSpi, docSpi, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := fetch(t, tt.url, buvid)
			if status != tt.status {
				t.Fatalf("status %d, want %d", status, tt.status)
			}
			var want, got any
			if err := json.Unmarshal([]byte(tt.doc), &want); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if d := shapeDiff("", want, got); len(d) > 0 {
				t.Errorf("shape differs from the real one:\n%s\nbody: %s", strings.Join(d, "\n"), body)
			}
			if wc, gc := want.(map[string]any)["code"], got.(map[string]any)["code"]; wc != gc {
				t.Errorf("code %v, want %v", gc, wc)
			}
		})
	}
}

func TestRoomInitValues(t *testing.T) {
	s := Start(t, Config{})
	s.AddRoom(RoomConfig{RoomID: 5440, ShortID: 1, UID: 9617619, Live: true})
	s.AddRoom(RoomConfig{RoomID: 21452505, UID: 42})
	type roomInit struct {
		RoomID     int64 `json:"room_id"`
		ShortID    int64 `json:"short_id"`
		UID        int64 `json:"uid"`
		LiveStatus int   `json:"live_status"`
		LiveTime   int64 `json:"live_time"`
	}
	tests := []struct {
		name         string
		id           int64
		want         roomInit
		liveTimeZero bool
	}{
		{"short id resolves", 1, roomInit{RoomID: 5440, ShortID: 1, UID: 9617619, LiveStatus: 1}, false},
		{"real id", 5440, roomInit{RoomID: 5440, ShortID: 1, UID: 9617619, LiveStatus: 1}, false},
		{"offline", 21452505, roomInit{RoomID: 21452505, UID: 42}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got roomInit
			getData(t, fmt.Sprintf("%s%s?id=%d", s.URL(), PathRoomInit, tt.id), &got)
			if (got.LiveTime == 0) != tt.liveTimeZero {
				t.Errorf("live_time %d, want zero %v", got.LiveTime, tt.liveTimeZero)
			}
			if !tt.liveTimeZero && time.Since(time.Unix(got.LiveTime, 0)) < 50*time.Second {
				t.Errorf("live_time %v, want about a minute ago for a room added live", time.Unix(got.LiveTime, 0))
			}
			got.LiveTime = 0
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestNotFoundDataIsArray(t *testing.T) {
	s := Start(t, Config{})
	for _, path := range []string{PathRoomInit + "?id=7", PathRoomInfo + "?room_id=7", PathPlayInfo + "?room_id=7"} {
		_, env := getJSON(t, s.URL()+path, "")
		if env.Code != 60004 || string(env.Data) != "[]" {
			t.Errorf("%s: code %d data %s, want 60004 and []", path, env.Code, env.Data)
		}
	}
}

func TestPlayInfoFollowsLiveState(t *testing.T) {
	s := Start(t, Config{})
	room := s.AddRoom(RoomConfig{RoomID: 5440, UID: 9617619})
	s.SetPlayHosts("https://xy1x2x3x4xy.mcdn.bilivideo.cn:486", s.URL())
	play := func() (liveStatus int, info json.RawMessage) {
		var d struct {
			LiveStatus  int             `json:"live_status"`
			PlayurlInfo json.RawMessage `json:"playurl_info"`
		}
		getData(t, s.URL()+PathPlayInfo+"?room_id=5440&qn=250", &d)
		return d.LiveStatus, d.PlayurlInfo
	}
	if st, info := play(); st != 0 || string(info) != "null" {
		t.Errorf("offline: live_status %d playurl_info %.40s, want 0 and null", st, info)
	}
	room.GoLive()
	st, info := play()
	if st != 1 || string(info) == "null" {
		t.Fatalf("live: live_status %d playurl_info %.40s, want 1 and an object", st, info)
	}
	for _, want := range []string{`"host":"https://xy1x2x3x4xy.mcdn.bilivideo.cn:486"`, `"current_qn":250`, `qn=250`, `live_9617619_bs_5440_`} {
		if !strings.Contains(string(info), want) {
			t.Errorf("playurl_info lacks %s", want)
		}
	}
	// The hosts come in the order set.
	if a, b := strings.Index(string(info), "mcdn"), strings.Index(string(info), s.URL()); a > b {
		t.Errorf("mcdn host at %d after %s at %d, want the order given", a, s.URL(), b)
	}
	room.EndLive()
	if st, info := play(); st != 0 || string(info) != "null" {
		t.Errorf("ended: live_status %d playurl_info %.40s, want 0 and null", st, info)
	}
}

func TestDanmuInfoChecks(t *testing.T) {
	s := Start(t, Config{})
	s.AddRoom(RoomConfig{RoomID: 5440, ShortID: 1})
	buvid := buvid3(t, s)
	key := mixinKey(t, s)
	signed := danmuInfoURL(s, 5440, key)
	tests := []struct {
		name  string
		url   string
		buvid string
		want  int
	}{
		{"signed with nav keys and issued buvid3", signed, buvid, 0},
		{"short id", danmuInfoURL(s, 1, key), buvid, 0},
		{"unsigned", s.URL() + PathDanmuInfo + "?id=5440&type=0&web_location=444.8", buvid, -352},
		{"tampered after signing", strings.Replace(signed, "id=5440", "id=5441", 1), buvid, -352},
		{"wrong keys", danmuInfoURL(s, 5440, bilibili.WBIMixinKey(strings.Repeat("a", 32), strings.Repeat("b", 32))), buvid, -352},
		{"no buvid3", signed, "", -352},
		{"buvid3 never issued", signed, "2D6CB7B4-0B8B-D3E9-49C5-A5A4B2C1D3E423456infoc", -352},
		{"signed, unknown room", danmuInfoURL(s, 999, key), buvid, 60004},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, env := getJSON(t, tt.url, tt.buvid)
			if status != http.StatusOK || env.Code != tt.want {
				t.Errorf("status %d code %d, want 200 and %d", status, env.Code, tt.want)
			}
		})
	}
}

func TestDanmuInfoTokenAndHost(t *testing.T) {
	s := Start(t, Config{})
	s.AddRoom(RoomConfig{RoomID: 5440})
	buvid := buvid3(t, s)
	_, env := getJSON(t, danmuInfoURL(s, 5440, mixinKey(t, s)), buvid)
	var info struct {
		Token    string `json:"token"`
		HostList []struct {
			Host   string `json:"host"`
			WSPort int    `json:"ws_port"`
		} `json:"host_list"`
	}
	if err := json.Unmarshal(env.Data, &info); err != nil {
		t.Fatal(err)
	}
	if len(info.Token) < 32 || len(info.HostList) == 0 {
		t.Fatalf("token %q hosts %v, want a long token and a host", info.Token, info.HostList)
	}
	// A client builds ws://{host}:{ws_port}/sub from the list; it must be
	// this server.
	u, _ := url.Parse(s.URL())
	if got := fmt.Sprintf("%s:%d", info.HostList[0].Host, info.HostList[0].WSPort); got != u.Host {
		t.Errorf("host_list[0] = %s, want %s", got, u.Host)
	}
}

func TestInjectedFaults(t *testing.T) {
	s := Start(t, Config{})
	s.AddRoom(RoomConfig{RoomID: 5440})
	roomInit := s.URL() + PathRoomInit + "?id=5440"
	roomInfo := s.URL() + PathRoomInfo + "?room_id=5440"

	s.RiskControl(PathRoomInit, 2)
	for i, want := range []int{-352, -352, 0} {
		if status, env := getJSON(t, roomInit, ""); status != 200 || env.Code != want {
			t.Errorf("room_init call %d: status %d code %d, want 200 and %d", i+1, status, env.Code, want)
		}
	}
	if _, env := getJSON(t, roomInfo, ""); env.Code != 0 {
		t.Errorf("getInfoByRoom code %d during room_init's risk control, want 0", env.Code)
	}

	s.HTTP412("", 2) // every path
	for i, u := range []string{roomInfo, roomInit, roomInit} {
		status, body := fetch(t, u, "")
		want := []int{412, 412, 200}[i]
		if status != want {
			t.Errorf("call %d after HTTP412: status %d, want %d", i+1, status, want)
		}
		if status == 412 {
			var got, doc any
			json.Unmarshal(body, &got)
			json.Unmarshal([]byte(doc412), &doc)
			if d := shapeDiff("", doc, got); len(d) > 0 {
				t.Errorf("412 body %s: %v", body, d)
			}
		}
	}
	if got, want := s.Requests(PathRoomInit), 5; got != want {
		t.Errorf("Requests(room_init) = %d, want %d (rejected ones included)", got, want)
	}
	if got, want := s.Requests(""), 7; got != want {
		t.Errorf("Requests(\"\") = %d, want %d", got, want)
	}
}

func TestCoverIsJPEG(t *testing.T) {
	s := Start(t, Config{})
	s.AddRoom(RoomConfig{RoomID: 5440})
	var info struct {
		RoomInfo struct {
			Cover string `json:"cover"`
		} `json:"room_info"`
	}
	getData(t, s.URL()+PathRoomInfo+"?room_id=5440", &info)
	status, body := fetch(t, info.RoomInfo.Cover, "")
	if status != 200 || !slices.Equal(body[:3], []byte{0xff, 0xd8, 0xff}) {
		t.Errorf("cover %s: status %d, starts % x; want 200 and a JPEG", info.RoomInfo.Cover, status, body[:min(3, len(body))])
	}
}
