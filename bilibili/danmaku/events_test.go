package danmaku

import (
	"reflect"
	"testing"
	"time"
)

// Message bodies in the shapes Bilibili sends (see the shapes notes in the
// simulator); DANMU_MSG carries its real cmd suffix and full info array.
const danmuMsg = `{"cmd":"DANMU_MSG:4:0:2:2:2:0","info":[[0,1,25,16777215,1732400123456,1732400123,0,"8f3e7a1b",0,0,0,"",0,"{}","{}",{"mode":0,"show_player_type":0,"extra":"{\"send_from_me\":false}"},{"activity_identity":"","activity_source":0,"not_show":0},0],"弹幕内容",[12345678,"用户名",0,0,0,10000,1,""],[21,"粉丝牌","主播名",5440,1725515,"",0,6809855,1725515,5414290,3,1,9617619],[12,0,6406234,"\u003e50000",0],["",""],0,0,null,{"ts":1732400123,"ct":"A1B2C3D4"},0,0,null,null,0,210,[1],null]}`

func TestParseMessage(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Event
	}{
		{"LIVE with key", `{"cmd":"LIVE","live_key":"531937263129478410","voice_background":"","sub_session_key":"x","live_platform":"pc","live_model":0,"roomid":5440,"live_time":1732400000}`,
			Live{RoomID: 5440, LiveKey: "531937263129478410", LiveTime: time.Unix(1732400000, 0)}},
		{"LIVE bare", `{"cmd":"LIVE","roomid":5440}`, Live{RoomID: 5440}},
		{"PREPARING string roomid", `{"cmd":"PREPARING","roomid":"5440"}`, Preparing{RoomID: 5440}},
		{"PREPARING number roomid", `{"cmd":"PREPARING","roomid":5440}`, Preparing{RoomID: 5440}},
		{"ROOM_CHANGE", `{"cmd":"ROOM_CHANGE","data":{"title":"新标题","area_id":236,"parent_area_id":6,"area_name":"主机游戏","parent_area_name":"单机游戏","live_key":"1","sub_session_key":"2"}}`,
			RoomChange{Title: "新标题", AreaName: "主机游戏", ParentAreaName: "单机游戏"}},
		{"CUT_OFF", `{"cmd":"CUT_OFF","msg":"违反直播规范","roomid":5440}`, CutOff{Message: "违反直播规范"}},
		{"CUT_OFF_V2", `{"cmd":"CUT_OFF_V2","data":{"room_id":5440,"live_key":"1","cut_off_reason":"违规","live_platform":"pc"}}`, CutOff{Message: "违规"}},
		{"WARNING", `{"cmd":"WARNING","msg":"请注意直播内容","roomid":5440}`, Warning{Message: "请注意直播内容"}},
		{"ROOM_LOCK", `{"cmd":"ROOM_LOCK","expire":"2024-12-01 00:00:00","roomid":5440}`, RoomLock{Until: "2024-12-01 00:00:00"}},
		{"DANMU_MSG", danmuMsg, Danmaku{Text: "弹幕内容", UID: 12345678, Uname: "用户名", Color: 16777215, Mode: 1, FontSize: 25, SentAt: time.UnixMilli(1732400123456)}},
		{"SUPER_CHAT_MESSAGE", `{"cmd":"SUPER_CHAT_MESSAGE","data":{"id":123,"uid":12345678,"price":30,"rate":1000,"message":"醒目留言内容","start_time":1732400123,"end_time":1732400183,"time":60,"user_info":{"uname":"用户名","face":"x"}},"roomid":5440}`,
			SuperChat{UID: 12345678, Uname: "用户名", Message: "醒目留言内容", Price: 30, Duration: time.Minute}},
		{"SEND_GIFT", `{"cmd":"SEND_GIFT","data":{"giftName":"辣条","giftId":1,"num":5,"uname":"用户名","uid":12345678,"price":100,"coin_type":"silver","total_coin":500,"timestamp":1732400123,"action":"投喂"}}`,
			Gift{UID: 12345678, Uname: "用户名", GiftName: "辣条", Num: 5, Price: 100, CoinType: "silver"}},
		{"GUARD_BUY", `{"cmd":"GUARD_BUY","data":{"uid":12345678,"username":"用户名","guard_level":3,"num":1,"price":198000,"gift_id":10003,"gift_name":"舰长","start_time":1,"end_time":1}}`,
			GuardBuy{UID: 12345678, Uname: "用户名", Level: 3, Num: 1, Price: 198000}},
		{"WATCHED_CHANGE", `{"cmd":"WATCHED_CHANGE","data":{"num":1234,"text_small":"1234","text_large":"1234人看过"}}`, WatchedChange{Num: 1234}},
		{"unknown", `{"cmd":"ONLINE_RANK_COUNT","data":{"count":5}}`, Unknown{Command: "ONLINE_RANK_COUNT", Raw: []byte(`{"cmd":"ONLINE_RANK_COUNT","data":{"count":5}}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMessage([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestCmdOf(t *testing.T) {
	tests := []struct {
		body, want string
		ok         bool
	}{
		{`{"cmd":"DANMU_MSG:4:0:2:2:2:0","info":[]}`, "DANMU_MSG", true},
		{`{ "cmd" : "LIVE" }`, "LIVE", true},
		{`{"data":{"x":1},"cmd":"SEND_GIFT"}`, "SEND_GIFT", true},
		{`{"cmd":"A\u0042C"}`, "ABC", true},
		{`{"data":1}`, "", false},
		{`{"cmd":5}`, "", false},
		{`{"cmd":"unterminated`, "", false},
	}
	for _, tt := range tests {
		got, err := CmdOf([]byte(tt.body))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("CmdOf(%s) = %q, %v, want %q (ok %v)", tt.body, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseMessageRejectsBrokenDanmaku(t *testing.T) {
	for _, body := range []string{
		`{"cmd":"DANMU_MSG","info":[]}`,
		`{"cmd":"DANMU_MSG","info":[1,2,3]}`,
		`{"cmd":"LIVE","roomid":"abc"}`,
	} {
		if ev, err := ParseMessage([]byte(body)); err == nil {
			t.Errorf("ParseMessage(%s) = %#v, want an error", body, ev)
		}
	}
}

// The scanner and encoding/json must agree on every DANMU_MSG.
func FuzzScanDanmaku(f *testing.F) {
	f.Add([]byte(danmuMsg))
	f.Add([]byte(`{"cmd":"DANMU_MSG","info":[[0,"1",25.0,"255",1],"a\"b\\u4e2d",[7,"x\ny"]]}`))
	f.Add([]byte(`{"cmd":"DANMU_MSG","info":[[],"",[]]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, err := scanDanmaku(body)
		if err != nil {
			return // falls back to encoding/json
		}
		slow, err := parseDanmaku(body)
		if err != nil {
			return // the scanner is more lenient about the parts it skips
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("scanner %#v, encoding/json %#v", fast, slow)
		}
	})
}
