package bilibilitest

import (
	"encoding/binary"
	"encoding/json"
	"testing"
	"time"

	"roomrec/bilibili/danmaku"
)

func TestDanmakuAuth(t *testing.T) {
	s := Start(t, Config{})
	s.AddRoom(RoomConfig{RoomID: 5440, ShortID: 1})
	s.AddRoom(RoomConfig{RoomID: 6000})
	token, _ := danmakuToken(t, s, 5440)
	otherToken, _ := danmakuToken(t, s, 6000)
	tests := []struct {
		name  string
		room  int64
		token string
		want  int
	}{
		{"issued token, real id", 5440, token, 0},
		{"made-up token", 5440, "not-a-token", -101},
		{"another room's token", 5440, otherToken, -101},
		{"short id instead of real", 1, token, -101},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialDanmaku(t, s, tt.room, tt.token)
			if got := c.authReply(); got != tt.want {
				t.Fatalf("auth reply code %d, want %d", got, tt.want)
			}
			if tt.want != 0 {
				if _, err := c.readFrame(2 * time.Second); err == nil {
					t.Errorf("connection still open after a refused auth")
				}
				return
			}
			waitFor(t, time.Second, "connection counted", func() bool { return s.DanmakuConnections(5440) == 1 })
		})
	}
}

func TestDanmakuFirstPacketMustBeAuth(t *testing.T) {
	s := Start(t, Config{})
	s.AddRoom(RoomConfig{RoomID: 5440})
	c := dialDanmakuRaw(t, s)
	c.send(danmaku.Packet{Version: danmaku.VersionInt, Op: danmaku.OpHeartbeat, Seq: 1})
	if got := c.authReply(); got != -101 {
		t.Errorf("reply to a heartbeat before auth: code %d, want -101", got)
	}
	if _, err := c.readFrame(2 * time.Second); err == nil {
		t.Errorf("connection still open after a refused auth")
	}
}

func TestDanmakuHeartbeat(t *testing.T) {
	s := Start(t, Config{})
	s.AddRoom(RoomConfig{RoomID: 5440})
	token, _ := danmakuToken(t, s, 5440)
	c := dialDanmaku(t, s, 5440, token)
	c.expectAuthOK()
	for range 2 {
		c.send(danmaku.Packet{Version: danmaku.VersionInt, Op: danmaku.OpHeartbeat, Seq: 1, Body: []byte("[object Object]")})
		ps, err := c.readFrame(2 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != 1 || ps[0].Op != danmaku.OpHeartbeatReply || len(ps[0].Body) < 4 {
			t.Fatalf("heartbeat reply %+v, want one op 3 with a 4-byte popularity", ps)
		}
		if pop := binary.BigEndian.Uint32(ps[0].Body); pop == 0 {
			t.Errorf("popularity 0, want a plausible count")
		}
	}
}

func TestDanmakuLiveAndPreparing(t *testing.T) {
	s := Start(t, Config{})
	room := s.AddRoom(RoomConfig{RoomID: 5440})
	token, _ := danmakuToken(t, s, 5440)
	c := dialDanmaku(t, s, 5440, token)
	c.expectAuthOK()
	waitFor(t, time.Second, "connection counted", func() bool { return s.DanmakuConnections(5440) == 1 })

	room.GoLive()
	var first, second struct {
		RoomID   int64  `json:"roomid"`
		LiveKey  string `json:"live_key"`
		LiveTime int64  `json:"live_time"`
	}
	if err := json.Unmarshal(c.nextMessage("LIVE", 2*time.Second), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(c.nextMessage("LIVE", 2*time.Second), &second); err != nil {
		t.Fatal(err)
	}
	if first.RoomID != 5440 || first.LiveKey != room.LiveKey() || first.LiveKey == "" || first.LiveTime == 0 {
		t.Errorf("first LIVE %+v, want roomid 5440, live_key %q and live_time", first, room.LiveKey())
	}
	if second.RoomID != 5440 || second.LiveKey != "" {
		t.Errorf("second LIVE %+v, want roomid 5440 and no live_key", second)
	}

	room.EndLive()
	var prep struct {
		RoomID any `json:"roomid"`
	}
	if err := json.Unmarshal(c.nextMessage("PREPARING", 2*time.Second), &prep); err != nil {
		t.Fatal(err)
	}
	if prep.RoomID != "5440" {
		t.Errorf("PREPARING roomid %#v, want the string \"5440\"", prep.RoomID)
	}
	if room.LiveKey() != "" {
		t.Errorf("LiveKey %q after EndLive, want empty", room.LiveKey())
	}
}

func TestDanmakuMessages(t *testing.T) {
	s := Start(t, Config{})
	room := s.AddRoom(RoomConfig{RoomID: 5440, Anchor: "主播"})
	token, _ := danmakuToken(t, s, 5440)
	c := dialDanmaku(t, s, 5440, token)
	c.expectAuthOK()
	waitFor(t, time.Second, "connection counted", func() bool { return s.DanmakuConnections(5440) == 1 })

	sent := time.UnixMilli(1732400123456)
	room.SendDanmaku(Danmaku{UID: 42, Uname: "观众", Text: "前排", Color: 0xff0000, Mode: 4, FontSize: 30, SentAt: sent})
	var dm struct {
		Cmd  string            `json:"cmd"`
		Info []json.RawMessage `json:"info"`
	}
	if err := json.Unmarshal(c.nextMessage("DANMU_MSG", 2*time.Second), &dm); err != nil {
		t.Fatal(err)
	}
	var meta []any
	var text string
	var user []any
	json.Unmarshal(dm.Info[0], &meta)
	json.Unmarshal(dm.Info[1], &text)
	json.Unmarshal(dm.Info[2], &user)
	if dm.Cmd == "DANMU_MSG" {
		t.Errorf("cmd %q, want the real suffixed form", dm.Cmd)
	}
	if len(meta) < 5 || meta[1] != 4.0 || meta[2] != 30.0 || meta[3] != float64(0xff0000) || meta[4] != float64(sent.UnixMilli()) {
		t.Errorf("info[0] = %v, want mode 4, size 30, colour 0xff0000, time %d", meta, sent.UnixMilli())
	}
	if text != "前排" || len(user) < 2 || user[0] != 42.0 || user[1] != "观众" {
		t.Errorf("info[1] %q, info[2] %v; want the text and uid 42 观众", text, user)
	}

	room.SendSuperChat(SuperChat{UID: 43, Uname: "老板", Message: "加油", Price: 30, Duration: time.Minute})
	var sc struct {
		Data struct {
			UID      int64  `json:"uid"`
			Price    int    `json:"price"`
			Message  string `json:"message"`
			Time     int    `json:"time"`
			UserInfo struct {
				Uname string `json:"uname"`
			} `json:"user_info"`
		} `json:"data"`
	}
	json.Unmarshal(c.nextMessage("SUPER_CHAT_MESSAGE", 2*time.Second), &sc)
	if d := sc.Data; d.UID != 43 || d.Price != 30 || d.Message != "加油" || d.Time != 60 || d.UserInfo.Uname != "老板" {
		t.Errorf("super chat %+v, want uid 43, 30 CNY, 加油, 60 s, 老板", d)
	}

	room.SendGift(Gift{UID: 44, Uname: "粉丝", GiftName: "辣条", Num: 5, Price: 100, CoinType: "silver"})
	var gift struct {
		Data struct {
			GiftName  string `json:"giftName"`
			Num       int    `json:"num"`
			UID       int64  `json:"uid"`
			CoinType  string `json:"coin_type"`
			TotalCoin int    `json:"total_coin"`
		} `json:"data"`
	}
	json.Unmarshal(c.nextMessage("SEND_GIFT", 2*time.Second), &gift)
	if d := gift.Data; d.GiftName != "辣条" || d.Num != 5 || d.UID != 44 || d.CoinType != "silver" || d.TotalCoin != 500 {
		t.Errorf("gift %+v, want 5 辣条 from 44, silver, 500 in all", d)
	}

	room.SendGuard(Guard{UID: 45, Uname: "舰长", Level: 3, Num: 1, Price: 198000})
	var guard struct {
		Data struct {
			UID        int64  `json:"uid"`
			Username   string `json:"username"`
			GuardLevel int    `json:"guard_level"`
			GiftName   string `json:"gift_name"`
			Price      int    `json:"price"`
		} `json:"data"`
	}
	json.Unmarshal(c.nextMessage("GUARD_BUY", 2*time.Second), &guard)
	if d := guard.Data; d.UID != 45 || d.Username != "舰长" || d.GuardLevel != 3 || d.GiftName != "舰长" || d.Price != 198000 {
		t.Errorf("guard %+v, want uid 45 level 3 舰长 198000", d)
	}

	room.SetTitle("新标题")
	var change struct {
		Data struct {
			Title string `json:"title"`
		} `json:"data"`
	}
	json.Unmarshal(c.nextMessage("ROOM_CHANGE", 2*time.Second), &change)
	if change.Data.Title != "新标题" {
		t.Errorf("ROOM_CHANGE title %q, want 新标题", change.Data.Title)
	}
	var info struct {
		RoomInfo struct {
			Title string `json:"title"`
		} `json:"room_info"`
	}
	getData(t, s.URL()+PathRoomInfo+"?room_id=5440", &info)
	if info.RoomInfo.Title != "新标题" {
		t.Errorf("getInfoByRoom title %q after SetTitle, want 新标题", info.RoomInfo.Title)
	}

	room.SendRaw([]byte(`{"cmd":"WARNING","msg":"请注意直播内容","roomid":5440}`))
	c.nextMessage("WARNING", 2*time.Second)
}

func TestDanmakuFraming(t *testing.T) {
	// Rounds of one to three messages come in every framing Bilibili uses,
	// brotli most of all, and messages sent back to back share a frame.
	s := Start(t, Config{})
	room := s.AddRoom(RoomConfig{RoomID: 5440})
	token, _ := danmakuToken(t, s, 5440)
	c := dialDanmaku(t, s, 5440, token)
	c.expectAuthOK()
	waitFor(t, time.Second, "connection counted", func() bool { return s.DanmakuConnections(5440) == 1 })
	frames := map[danmaku.Version]int{}
	shared := 0 // frames holding more than one message
	for round := range 30 {
		n := 1 + round%3
		for i := range n {
			room.SendDanmaku(Danmaku{UID: int64(i), Uname: "u", Text: "t"})
		}
		for got := 0; got < n; {
			ps, err := c.readFrame(2 * time.Second)
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			for _, p := range ps {
				if p.Op != danmaku.OpMessage || messageCmd(p.Body) != "DANMU_MSG" {
					t.Fatalf("round %d: packet op %d %s, want DANMU_MSG", round, p.Op, p.Body)
				}
			}
			frames[ps[0].frameVersion]++
			if len(ps) > 1 {
				shared++
			}
			got += len(ps)
			if got > n {
				t.Fatalf("round %d: %d messages, want %d", round, got, n)
			}
		}
	}
	if frames[danmaku.VersionBrotli] == 0 || frames[danmaku.VersionBrotli] < frames[danmaku.VersionZlib] {
		t.Errorf("frames by version %v, want brotli most often", frames)
	}
	if frames[danmaku.VersionZlib] == 0 || frames[danmaku.VersionJSON] == 0 {
		t.Errorf("frames by version %v, want some zlib and some bare ones too", frames)
	}
	if shared == 0 {
		t.Errorf("no frame held more than one message, want back-to-back messages batched")
	}
}

func TestDropDanmakuConnections(t *testing.T) {
	s := Start(t, Config{})
	s.AddRoom(RoomConfig{RoomID: 5440})
	token, _ := danmakuToken(t, s, 5440)
	c := dialDanmaku(t, s, 5440, token)
	c.expectAuthOK()
	waitFor(t, time.Second, "connection counted", func() bool { return s.DanmakuConnections(5440) == 1 })
	s.DropDanmakuConnections()
	if _, err := c.readFrame(2 * time.Second); err == nil {
		t.Fatal("read succeeded after DropDanmakuConnections, want the connection gone")
	}
	waitFor(t, time.Second, "connection uncounted", func() bool { return s.DanmakuConnections(5440) == 0 })
}
