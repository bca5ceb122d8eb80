package danmaku

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Event is a message from a room's danmaku websocket.
type Event interface {
	// Cmd is Bilibili's command name, cut at the first ':'.
	Cmd() string
}

// Live says the room went live. Bilibili sends it twice per broadcast; the
// second has no LiveKey or LiveTime.
type Live struct {
	RoomID   int64
	LiveKey  string
	LiveTime time.Time // zero when absent
}

// Preparing says the broadcast ended.
type Preparing struct{ RoomID int64 }

// RoomChange says the title or area changed.
type RoomChange struct {
	Title, AreaName, ParentAreaName string
}

// CutOff says Bilibili's moderators stopped the broadcast (CUT_OFF and
// CUT_OFF_V2).
type CutOff struct{ Message string }

// Warning is a moderator's warning to the anchor.
type Warning struct{ Message string }

// RoomLock says the room is locked until a time.
type RoomLock struct{ Until string }

// Danmaku is a chat message.
type Danmaku struct {
	Text     string
	UID      int64
	Uname    string
	Color    int // decimal RGB
	Mode     int // 1 scrolling, 4 bottom, 5 top
	FontSize int
	SentAt   time.Time
}

// SuperChat is a paid, pinned message.
type SuperChat struct {
	UID      int64
	Uname    string
	Message  string
	Price    int // CNY
	Duration time.Duration
}

// Gift is a gift sent to the anchor.
type Gift struct {
	UID      int64
	Uname    string
	GiftName string
	Num      int
	Price    int // per gift, in the coin type's units (gold: 1000 = 1 CNY)
	CoinType string
}

// GuardBuy is a guard (舰长, 提督, 总督) purchase.
type GuardBuy struct {
	UID   int64
	Uname string
	Level int // 1 总督, 2 提督, 3 舰长
	Num   int
	Price int
}

// WatchedChange is the "N watched" counter.
type WatchedChange struct{ Num int64 }

// HeartbeatReply answers a heartbeat with the room's popularity figure.
type HeartbeatReply struct{ Popularity uint32 }

// Unknown is any message this package does not type. Raw is the whole body.
type Unknown struct {
	Command string
	Raw     []byte
}

func (Live) Cmd() string           { return "LIVE" }
func (Preparing) Cmd() string      { return "PREPARING" }
func (RoomChange) Cmd() string     { return "ROOM_CHANGE" }
func (CutOff) Cmd() string         { return "CUT_OFF" }
func (Warning) Cmd() string        { return "WARNING" }
func (RoomLock) Cmd() string       { return "ROOM_LOCK" }
func (Danmaku) Cmd() string        { return "DANMU_MSG" }
func (SuperChat) Cmd() string      { return "SUPER_CHAT_MESSAGE" }
func (Gift) Cmd() string           { return "SEND_GIFT" }
func (GuardBuy) Cmd() string       { return "GUARD_BUY" }
func (WatchedChange) Cmd() string  { return "WATCHED_CHANGE" }
func (HeartbeatReply) Cmd() string { return "HEARTBEAT_REPLY" }
func (u Unknown) Cmd() string      { return u.Command }

var cmdKey = []byte(`"cmd"`)

// CmdOf returns a message body's cmd, cut at the first ':'. It finds the
// key without decoding the body, since most messages in a busy room are
// ones nobody asked for.
func CmdOf(body []byte) (string, error) {
	i := bytes.Index(body, cmdKey)
	if i < 0 {
		return "", errors.New("message has no cmd")
	}
	rest := bytes.TrimLeft(body[i+len(cmdKey):], " \t\r\n")
	if len(rest) == 0 || rest[0] != ':' {
		return "", errors.New("message cmd is not a key")
	}
	rest = bytes.TrimLeft(rest[1:], " \t\r\n")
	if len(rest) == 0 || rest[0] != '"' {
		return "", errors.New("message cmd is not a string")
	}
	end := bytes.IndexByte(rest[1:], '"')
	if end < 0 {
		return "", errors.New("message cmd is not terminated")
	}
	cmd := rest[1 : 1+end]
	if bytes.IndexByte(cmd, '\\') >= 0 {
		// An escaped cmd never happens in practice; decode it properly.
		var m struct {
			Cmd string `json:"cmd"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return "", err
		}
		cmd = []byte(m.Cmd)
	}
	if j := bytes.IndexByte(cmd, ':'); j >= 0 {
		cmd = cmd[:j]
	}
	return string(cmd), nil
}

// ParseMessage decodes one op-5 message body into its typed event; cmds
// this package does not type come back as Unknown.
func ParseMessage(body []byte) (Event, error) {
	cmd, err := CmdOf(body)
	if err != nil {
		return nil, err
	}
	return parseCmd(cmd, body)
}

func parseCmd(cmd string, body []byte) (Event, error) {
	switch cmd {
	case "LIVE":
		var m struct {
			RoomID   flexInt `json:"roomid"`
			LiveKey  string  `json:"live_key"`
			LiveTime int64   `json:"live_time"`
		}
		if err := unmarshal(cmd, body, &m); err != nil {
			return nil, err
		}
		ev := Live{RoomID: int64(m.RoomID), LiveKey: m.LiveKey}
		if m.LiveTime > 0 {
			ev.LiveTime = time.Unix(m.LiveTime, 0)
		}
		return ev, nil
	case "PREPARING":
		var m struct {
			RoomID flexInt `json:"roomid"`
		}
		err := unmarshal(cmd, body, &m)
		return Preparing{RoomID: int64(m.RoomID)}, err
	case "ROOM_CHANGE":
		var m struct {
			Data struct {
				Title          string `json:"title"`
				AreaName       string `json:"area_name"`
				ParentAreaName string `json:"parent_area_name"`
			} `json:"data"`
		}
		err := unmarshal(cmd, body, &m)
		return RoomChange(m.Data), err
	case "CUT_OFF", "CUT_OFF_V2":
		var m struct {
			Msg  string `json:"msg"`
			Data struct {
				Reason string `json:"cut_off_reason"`
			} `json:"data"`
		}
		err := unmarshal(cmd, body, &m)
		if m.Msg == "" {
			m.Msg = m.Data.Reason
		}
		return CutOff{Message: m.Msg}, err
	case "WARNING":
		var m struct {
			Msg string `json:"msg"`
		}
		err := unmarshal(cmd, body, &m)
		return Warning{Message: m.Msg}, err
	case "ROOM_LOCK":
		var m struct {
			Expire string `json:"expire"`
		}
		err := unmarshal(cmd, body, &m)
		return RoomLock{Until: m.Expire}, err
	case "DANMU_MSG":
		if d, err := scanDanmaku(body); err == nil {
			return d, nil
		}
		return parseDanmaku(body)
	case "SUPER_CHAT_MESSAGE":
		var m struct {
			Data struct {
				UID      flexInt `json:"uid"`
				Price    int     `json:"price"`
				Message  string  `json:"message"`
				Time     int     `json:"time"`
				UserInfo struct {
					Uname string `json:"uname"`
				} `json:"user_info"`
			} `json:"data"`
		}
		err := unmarshal(cmd, body, &m)
		d := m.Data
		return SuperChat{UID: int64(d.UID), Uname: d.UserInfo.Uname, Message: d.Message, Price: d.Price,
			Duration: time.Duration(d.Time) * time.Second}, err
	case "SEND_GIFT":
		var m struct {
			Data struct {
				UID      flexInt `json:"uid"`
				Uname    string  `json:"uname"`
				GiftName string  `json:"giftName"`
				Num      int     `json:"num"`
				Price    int     `json:"price"`
				CoinType string  `json:"coin_type"`
			} `json:"data"`
		}
		err := unmarshal(cmd, body, &m)
		d := m.Data
		return Gift{UID: int64(d.UID), Uname: d.Uname, GiftName: d.GiftName, Num: d.Num, Price: d.Price, CoinType: d.CoinType}, err
	case "GUARD_BUY":
		var m struct {
			Data struct {
				UID        flexInt `json:"uid"`
				Username   string  `json:"username"`
				GuardLevel int     `json:"guard_level"`
				Num        int     `json:"num"`
				Price      int     `json:"price"`
			} `json:"data"`
		}
		err := unmarshal(cmd, body, &m)
		d := m.Data
		return GuardBuy{UID: int64(d.UID), Uname: d.Username, Level: d.GuardLevel, Num: d.Num, Price: d.Price}, err
	case "WATCHED_CHANGE":
		var m struct {
			Data struct {
				Num int64 `json:"num"`
			} `json:"data"`
		}
		err := unmarshal(cmd, body, &m)
		return WatchedChange{Num: m.Data.Num}, err
	}
	return Unknown{Command: cmd, Raw: append([]byte(nil), body...)}, nil
}

func unmarshal(cmd string, body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("parse %s: %w", cmd, err)
	}
	return nil
}

// parseDanmaku reads DANMU_MSG's positional info array: info[0] holds mode,
// font size, colour and send time; info[1] the text; info[2] the sender.
// Only those three elements are decoded; the rest (medals, levels, emoji
// data) is skipped as raw JSON.
func parseDanmaku(body []byte) (Event, error) {
	var m struct {
		Info []json.RawMessage `json:"info"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("parse DANMU_MSG: %w", err)
	}
	if len(m.Info) < 3 {
		return nil, fmt.Errorf("parse DANMU_MSG: info has %d elements, want at least 3", len(m.Info))
	}
	var meta []json.RawMessage
	var user []json.RawMessage
	var d Danmaku
	if err := json.Unmarshal(m.Info[0], &meta); err != nil {
		return nil, fmt.Errorf("parse DANMU_MSG info[0]: %w", err)
	}
	if err := json.Unmarshal(m.Info[1], &d.Text); err != nil {
		return nil, fmt.Errorf("parse DANMU_MSG text: %w", err)
	}
	if err := json.Unmarshal(m.Info[2], &user); err != nil {
		return nil, fmt.Errorf("parse DANMU_MSG user: %w", err)
	}
	num := func(list []json.RawMessage, i int) int64 {
		if i >= len(list) {
			return 0
		}
		return parseNumber(list[i])
	}
	d.Mode, d.FontSize, d.Color = int(num(meta, 1)), int(num(meta, 2)), int(num(meta, 3))
	if ms := num(meta, 4); ms > 0 {
		d.SentAt = time.UnixMilli(ms)
	}
	d.UID = num(user, 0)
	if len(user) > 1 {
		json.Unmarshal(user[1], &d.Uname)
	}
	return d, nil
}

// flexInt accepts a number or a numeric string: PREPARING sends roomid as a
// string where every other message sends a number.
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	b = bytes.Trim(b, `"`)
	if len(b) == 0 || string(b) == "null" {
		*f = 0
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("not an integer: %q", b)
	}
	*f = flexInt(n)
	return nil
}
