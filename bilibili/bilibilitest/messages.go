package bilibilitest

import (
	"fmt"
	"time"
)

// Danmaku is a chat message to send with SendDanmaku.
type Danmaku struct {
	UID      int64
	Uname    string
	Text     string
	Color    int // decimal RGB; default white
	Mode     int // 1 scrolling, 4 bottom, 5 top; default 1
	FontSize int // default 25
	SentAt   time.Time
}

// SuperChat is a paid message to send with SendSuperChat.
type SuperChat struct {
	UID      int64
	Uname    string
	Message  string
	Price    int // CNY
	Duration time.Duration
}

// Gift is a gift to send with SendGift.
type Gift struct {
	UID      int64
	Uname    string
	GiftName string
	Num      int
	Price    int    // per gift, in gold (1000 = 1 CNY) or silver
	CoinType string // "gold" or "silver"
}

// Guard is a guard (舰长) purchase to send with SendGuard.
type Guard struct {
	UID   int64
	Uname string
	Level int // 1 总督, 2 提督, 3 舰长
	Num   int
	Price int // gold
}

// SendDanmaku sends a DANMU_MSG with the real info array layout, cmd suffix
// included.
func (r *Room) SendDanmaku(d Danmaku) {
	if d.Color == 0 {
		d.Color = 0xffffff
	}
	if d.Mode == 0 {
		d.Mode = 1
	}
	if d.FontSize == 0 {
		d.FontSize = 25
	}
	if d.SentAt.IsZero() {
		d.SentAt = time.Now()
	}
	info := []any{
		[]any{0, d.Mode, d.FontSize, d.Color, d.SentAt.UnixMilli(), d.SentAt.Unix(), 0, r.s.randomHex(8), 0, 0, 0, "", 0, "{}", "{}",
			map[string]any{"mode": 0, "show_player_type": 0, "extra": `{"send_from_me":false,"mode":0,"color":16777215,"dm_type":0,"font_size":25}`},
			map[string]any{"activity_identity": "", "activity_source": 0, "not_show": 0}, 0},
		d.Text,
		[]any{d.UID, d.Uname, 0, 0, 0, 10000, 1, ""},
		[]any{21, "粉丝牌", r.cfg.Anchor, r.cfg.RoomID, 1725515, "", 0, 6809855, 1725515, 5414290, 3, 1, r.cfg.UID},
		[]any{12, 0, 6406234, ">50000", 0},
		[]any{"", ""}, 0, 0, nil,
		map[string]any{"ts": d.SentAt.Unix(), "ct": r.s.randomHex(8)},
		0, 0, nil, nil, 0, 210, []any{1}, nil,
	}
	r.broadcastMessages(mustJSON(map[string]any{"cmd": "DANMU_MSG:4:0:2:2:2:0", "info": info}))
}

// SendSuperChat sends a SUPER_CHAT_MESSAGE.
func (r *Room) SendSuperChat(sc SuperChat) {
	now := time.Now()
	secs := int(sc.Duration.Seconds())
	r.broadcastMessages(mustJSON(map[string]any{"cmd": "SUPER_CHAT_MESSAGE", "roomid": r.cfg.RoomID, "data": map[string]any{
		"id": r.s.intn(1e6), "uid": sc.UID, "price": sc.Price, "rate": 1000, "message": sc.Message,
		"start_time": now.Unix(), "end_time": now.Unix() + int64(secs), "time": secs,
		"user_info": map[string]any{"uname": sc.Uname, "face": r.s.url + "/_sim/cover/face.jpg"},
		"gift":      map[string]any{"gift_id": 12000, "gift_name": "醒目留言", "num": 1},
	}}))
}

// SendGift sends a SEND_GIFT.
func (r *Room) SendGift(g Gift) {
	if g.CoinType == "" {
		g.CoinType = "gold"
	}
	r.broadcastMessages(mustJSON(map[string]any{"cmd": "SEND_GIFT", "data": map[string]any{
		"giftName": g.GiftName, "giftId": 1, "num": g.Num, "uname": g.Uname, "uid": g.UID,
		"price": g.Price, "coin_type": g.CoinType, "total_coin": g.Price * g.Num,
		"timestamp": time.Now().Unix(), "action": "投喂",
	}}))
}

// SendGuard sends a GUARD_BUY.
func (r *Room) SendGuard(g Guard) {
	names := map[int]string{1: "总督", 2: "提督", 3: "舰长"}
	now := time.Now().Unix()
	r.broadcastMessages(mustJSON(map[string]any{"cmd": "GUARD_BUY", "data": map[string]any{
		"uid": g.UID, "username": g.Uname, "guard_level": g.Level, "num": g.Num, "price": g.Price,
		"gift_id": 10000 + g.Level, "gift_name": names[g.Level], "start_time": now, "end_time": now,
	}}))
}

// SendRaw sends any message body, for cmds the simulator has no helper for.
func (r *Room) SendRaw(body []byte) {
	r.broadcastMessages(append([]byte(nil), body...))
}

// sendWatched sends a WATCHED_CHANGE, as Bilibili does every few seconds.
func (r *Room) sendWatched(n int) {
	r.broadcastMessages(fmt.Appendf(nil, `{"cmd":"WATCHED_CHANGE","data":{"num":%d,"text_small":"%d","text_large":"%d人看过"}}`, n, n, n))
}
