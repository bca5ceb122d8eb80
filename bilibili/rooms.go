package bilibili

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// LiveStatus is a room's broadcast state as Bilibili reports it.
type LiveStatus int

const (
	Offline  LiveStatus = 0
	Live     LiveStatus = 1
	Rotation LiveStatus = 2 // replaying old videos; nothing to record
)

func (s LiveStatus) String() string {
	switch s {
	case Offline:
		return "offline"
	case Live:
		return "live"
	case Rotation:
		return "rotation"
	}
	return "status " + strconv.Itoa(int(s))
}

// RoomInit is what room_init says about a room id.
type RoomInit struct {
	RoomID     int64 // the real id
	ShortID    int64 // 0 when the room has none
	UID        int64 // the anchor
	LiveStatus LiveStatus
}

// ResolveRoom returns the real room id (and the short one) for a short or
// real id. It returns an error wrapping ErrRoomNotFound if Bilibili does not
// know the room.
func (c *Client) ResolveRoom(ctx context.Context, id int64) (RoomInit, error) {
	const endpoint = "room_init"
	env, err := c.get(ctx, hostLive, "/room/v1/Room/room_init", "id="+strconv.FormatInt(id, 10), endpoint)
	if err != nil {
		return RoomInit{}, fmt.Errorf("resolve room %d: %w", id, err)
	}
	var data struct {
		RoomID     int64      `json:"room_id"`
		ShortID    int64      `json:"short_id"`
		UID        int64      `json:"uid"`
		LiveStatus LiveStatus `json:"live_status"`
	}
	if err := decodeData(env, endpoint, &data); err != nil {
		return RoomInit{}, err
	}
	if data.RoomID == 0 {
		return RoomInit{}, fmt.Errorf("resolve room %d: %w: no room_id", id, ErrProtocol)
	}
	return RoomInit(data), nil
}

// RoomInfo is what a room page shows: title, cover, state and anchor.
type RoomInfo struct {
	RoomID, ShortID, UID int64
	Title                string
	Cover                string
	LiveStatus           LiveStatus
	LiveStartTime        time.Time // zero when offline
	AreaName             string
	ParentAreaName       string
	AnchorName           string
}

// RoomInfo returns the room's current info. It returns an error wrapping
// ErrRoomNotFound if the room does not exist.
func (c *Client) RoomInfo(ctx context.Context, roomID int64) (RoomInfo, error) {
	const endpoint = "getInfoByRoom"
	env, err := c.get(ctx, hostLive, "/xlive/web-room/v1/index/getInfoByRoom", "room_id="+strconv.FormatInt(roomID, 10), endpoint)
	if err != nil {
		return RoomInfo{}, fmt.Errorf("room info for room %d: %w", roomID, err)
	}
	var data struct {
		RoomInfo *struct {
			UID            int64      `json:"uid"`
			RoomID         int64      `json:"room_id"`
			ShortID        int64      `json:"short_id"`
			Title          string     `json:"title"`
			Cover          string     `json:"cover"`
			LiveStatus     LiveStatus `json:"live_status"`
			LiveStartTime  int64      `json:"live_start_time"`
			AreaName       string     `json:"area_name"`
			ParentAreaName string     `json:"parent_area_name"`
		} `json:"room_info"`
		AnchorInfo struct {
			BaseInfo struct {
				Uname string `json:"uname"`
			} `json:"base_info"`
		} `json:"anchor_info"`
	}
	if err := decodeData(env, endpoint, &data); err != nil {
		return RoomInfo{}, err
	}
	ri := data.RoomInfo
	if ri == nil {
		return RoomInfo{}, fmt.Errorf("room info for room %d: %w: no room_info", roomID, ErrProtocol)
	}
	info := RoomInfo{
		RoomID: ri.RoomID, ShortID: ri.ShortID, UID: ri.UID, Title: ri.Title, Cover: ri.Cover,
		LiveStatus: ri.LiveStatus, AreaName: ri.AreaName, ParentAreaName: ri.ParentAreaName,
		AnchorName: data.AnchorInfo.BaseInfo.Uname,
	}
	if ri.LiveStartTime > 0 {
		info.LiveStartTime = time.Unix(ri.LiveStartTime, 0)
	}
	return info, nil
}

// MaxAnchorsPerCall is the most anchors RoomsOfAnchors asks about at once;
// Bilibili's page of followed rooms asks for about as many.
const MaxAnchorsPerCall = 100

// RoomsOfAnchors returns, keyed by anchor uid, the rooms of up to
// MaxAnchorsPerCall anchors in one call to get_status_info_by_uids: what a
// thousand rooms' start-up and safety-net poll ask instead of one room
// info each. It fills the fields RoomInfo does; LiveStatus Rotation (a
// replay loop) is not live. An anchor Bilibili has no room for, or whose
// entry cannot be read, is missing from the map.
func (c *Client) RoomsOfAnchors(ctx context.Context, uids []int64) (map[int64]RoomInfo, error) {
	const endpoint = "get_status_info_by_uids"
	if len(uids) > MaxAnchorsPerCall {
		return nil, fmt.Errorf("%s: %d anchors in one call, at most %d", endpoint, len(uids), MaxAnchorsPerCall)
	}
	q := url.Values{}
	for _, uid := range uids {
		q.Add("uids[]", strconv.FormatInt(uid, 10))
	}
	env, err := c.get(ctx, hostLive, "/room/v1/Room/get_status_info_by_uids", q.Encode(), endpoint)
	if err != nil {
		return nil, fmt.Errorf("rooms of %d anchors: %w", len(uids), err)
	}
	rooms := map[int64]RoomInfo{}
	// No anchor known: Bilibili answers an empty array, not an object.
	if rawOrNull(env.Data) || string(env.Data) == "[]" {
		return rooms, nil
	}
	var raw map[string]json.RawMessage
	if err := decodeData(env, endpoint, &raw); err != nil {
		return nil, err
	}
	type entry struct {
		UID            int64      `json:"uid"`
		RoomID         int64      `json:"room_id"`
		ShortID        int64      `json:"short_id"`
		Title          string     `json:"title"`
		Cover          string     `json:"cover_from_user"`
		LiveStatus     LiveStatus `json:"live_status"`
		LiveTime       int64      `json:"live_time"`
		AreaName       string     `json:"area_v2_name"`
		ParentAreaName string     `json:"area_v2_parent_name"`
		Uname          string     `json:"uname"`
	}
	// Each anchor's entry is read on its own: one odd entry leaves that
	// anchor out (its room is then asked about alone) rather than making
	// the whole answer unreadable.
	data := map[string]entry{}
	for key, r := range raw {
		var e entry
		if json.Unmarshal(r, &e) == nil {
			data[key] = e
		}
	}
	for key, d := range data {
		uid := d.UID
		if uid == 0 {
			uid, _ = strconv.ParseInt(key, 10, 64)
		}
		if uid == 0 || d.RoomID == 0 {
			continue
		}
		info := RoomInfo{
			RoomID: d.RoomID, ShortID: d.ShortID, UID: uid, Title: d.Title, Cover: d.Cover,
			LiveStatus: d.LiveStatus, AreaName: d.AreaName, ParentAreaName: d.ParentAreaName,
			AnchorName: d.Uname,
		}
		// live_time is the unix second the broadcast began; anything
		// smaller than a plausible one is not trusted as a start.
		if d.LiveTime > 1e9 && d.LiveStatus == Live {
			info.LiveStartTime = time.Unix(d.LiveTime, 0)
		}
		rooms[uid] = info
	}
	return rooms, nil
}

// DanmuInfo is what a danmaku websocket needs: a token and where to dial.
type DanmuInfo struct {
	Token string
	URLs  []string // websocket URLs, in the order to try
	UID   int64    // the logged-in user from the cookie, 0 when logged out
	Buvid string
}

// fallbackDanmakuHost is Bilibili's long-standing default danmaku host,
// tried last in case every listed host fails.
const fallbackDanmakuHost = "broadcastlv.chat.bilibili.com"

// DanmuInfo returns a token and the websocket URLs for a room's danmaku. The
// request is WBI-signed and carries buvid3, as the website's is; a -352
// answer drops the cached WBI keys so the next call signs with fresh ones.
func (c *Client) DanmuInfo(ctx context.Context, roomID int64) (DanmuInfo, error) {
	const endpoint = "getDanmuInfo"
	buvid, err := c.Buvid3(ctx)
	if err != nil {
		return DanmuInfo{}, fmt.Errorf("danmaku info for room %d: buvid3: %w", roomID, err)
	}
	key, err := c.wbiMixinKey(ctx)
	if err != nil {
		return DanmuInfo{}, fmt.Errorf("danmaku info for room %d: wbi keys: %w", roomID, err)
	}
	params := url.Values{"id": {strconv.FormatInt(roomID, 10)}, "type": {"0"}, "web_location": {"444.8"}}
	env, err := c.get(ctx, hostLive, "/xlive/web-room/v1/index/getDanmuInfo", SignWBI(params, key, time.Now()), endpoint)
	if err != nil {
		if errors.Is(err, ErrRiskControl) {
			c.dropWBIKey()
		}
		return DanmuInfo{}, fmt.Errorf("danmaku info for room %d: %w", roomID, err)
	}
	var data struct {
		Token    string `json:"token"`
		HostList []struct {
			Host    string `json:"host"`
			Port    int    `json:"port"`
			WSSPort int    `json:"wss_port"`
			WSPort  int    `json:"ws_port"`
		} `json:"host_list"`
	}
	if err := decodeData(env, endpoint, &data); err != nil {
		return DanmuInfo{}, err
	}
	// Against a plain-http API (the simulator), the websocket is plain too.
	secure := !isPlainHTTP(c.ep.Live)
	info := DanmuInfo{Token: data.Token, UID: c.UID(), Buvid: buvid}
	seen := map[string]bool{}
	for _, h := range data.HostList {
		if h.Host == "" {
			continue
		}
		seen[h.Host] = true
		info.URLs = append(info.URLs, websocketURL(h.Host, h.WSSPort, h.WSPort, secure))
	}
	if !seen[fallbackDanmakuHost] {
		info.URLs = append(info.URLs, websocketURL(fallbackDanmakuHost, 443, 2244, secure))
	}
	return info, nil
}

func websocketURL(host string, wssPort, wsPort int, secure bool) string {
	if secure {
		if wssPort == 0 {
			wssPort = 443
		}
		return "wss://" + host + ":" + strconv.Itoa(wssPort) + "/sub"
	}
	if wsPort == 0 {
		wsPort = 2244
	}
	return "ws://" + host + ":" + strconv.Itoa(wsPort) + "/sub"
}

func isPlainHTTP(base string) bool {
	u, err := url.Parse(base)
	return err == nil && u.Scheme == "http"
}

// rawOrNull reports whether a JSON value is absent or null.
func rawOrNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}
