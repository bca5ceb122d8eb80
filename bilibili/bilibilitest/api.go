package bilibilitest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"roomrec/bilibili"
)

// The qualities every simulated room offers, best first.
var acceptQn = []int{10000, 400, 250, 150}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeRiskControl answers as Bilibili's risk control does: HTTP 200 with
// code -352 and a voucher for a captcha the client cannot solve.
func (s *Server) writeRiskControl(w http.ResponseWriter) {
	writeJSON(w, http.StatusOK, map[string]any{"code": -352, "message": "-352", "ttl": 1,
		"data": map[string]any{"v_voucher": "voucher_" + s.randomHex(8)}})
}

func ok(data any) map[string]any {
	return map[string]any{"code": 0, "message": "0", "ttl": 1, "data": data}
}

// roomParam finds the room a request names, or writes Bilibili's answer for
// an unknown one and returns nil.
func (s *Server) roomParam(w http.ResponseWriter, r *http.Request, param string) *Room {
	id, err := strconv.ParseInt(r.URL.Query().Get(param), 10, 64)
	room := s.Room(id)
	if err != nil || room == nil {
		// Bilibili answers 60004 with data as an empty array, not an object.
		writeJSON(w, http.StatusOK, map[string]any{"code": 60004, "msg": "直播间不存在", "message": "直播间不存在", "data": []any{}})
		return nil
	}
	return room
}

func (s *Server) handleRoomInit(w http.ResponseWriter, r *http.Request) {
	room := s.roomParam(w, r, "id")
	if room == nil {
		return
	}
	st := room.state()
	writeJSON(w, http.StatusOK, map[string]any{"code": 0, "msg": "ok", "message": "ok", "data": map[string]any{
		"room_id": st.cfg.RoomID, "short_id": st.cfg.ShortID, "uid": st.cfg.UID,
		"need_p2p": 0, "is_hidden": false, "is_locked": false, "is_portrait": false,
		"live_status": st.liveStatus(), "hidden_till": 0, "lock_till": 0, "encrypted": false,
		"pwd_verified": false, "live_time": st.liveUnix(), "room_shield": 0, "is_sp": 0, "special_type": 0,
	}})
}

func (s *Server) handleRoomInfo(w http.ResponseWriter, r *http.Request) {
	room := s.roomParam(w, r, "room_id")
	if room == nil {
		return
	}
	st := room.state()
	writeJSON(w, http.StatusOK, ok(map[string]any{
		"room_info": map[string]any{
			"uid": st.cfg.UID, "room_id": st.cfg.RoomID, "short_id": st.cfg.ShortID,
			"title": st.title, "cover": st.cfg.Cover, "tags": "", "background": "", "description": "",
			"live_status": st.liveStatus(), "live_start_time": st.liveUnix(), "live_screen_type": 0,
			"lock_status": 0, "lock_time": 0, "hidden_status": 0, "hidden_time": 0,
			"area_id": 236, "area_name": st.cfg.AreaName, "parent_area_id": 6, "parent_area_name": st.cfg.ParentAreaName,
			"keyframe": s.url + "/_sim/cover/keyframe.jpg", "special_type": 0, "up_session": st.liveKey,
			"pk_status": 0, "is_studio": false, "online": 1234,
		},
		"anchor_info": map[string]any{
			"base_info":     map[string]any{"uname": st.cfg.Anchor, "face": s.url + "/_sim/cover/face.jpg", "gender": "保密", "official_info": map[string]any{"role": 0, "title": "", "desc": ""}},
			"live_info":     map[string]any{"level": 20},
			"relation_info": map[string]any{"attention": 100000},
		},
		"watched_show": map[string]any{"num": 1234, "text_small": "1234", "text_large": "1234人看过"},
	}))
}

// handleRoomsOfAnchors answers get_status_info_by_uids: the rooms of many
// anchors at once, keyed by uid as a string. Unknown uids are left out;
// when none is known, data is an empty array, as Bilibili sends it.
func (s *Server) handleRoomsOfAnchors(w http.ResponseWriter, r *http.Request) {
	var uids []int64
	if r.Method == http.MethodPost {
		var body struct {
			UIDs []int64 `json:"uids"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
			writeJSON(w, http.StatusOK, map[string]any{"code": -400, "msg": "请求错误", "message": "请求错误", "data": []any{}})
			return
		}
		uids = body.UIDs
	} else {
		for _, v := range r.URL.Query()["uids[]"] {
			uid, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				writeJSON(w, http.StatusOK, map[string]any{"code": -400, "msg": "请求错误", "message": "请求错误", "data": []any{}})
				return
			}
			uids = append(uids, uid)
		}
	}
	data := map[string]any{}
	for _, uid := range uids {
		room := s.roomOfAnchor(uid)
		if room == nil {
			continue
		}
		st := room.state()
		data[strconv.FormatInt(uid, 10)] = map[string]any{
			"title": st.title, "room_id": st.cfg.RoomID, "uid": uid, "online": 1234,
			"live_time": st.liveUnix(), "live_status": st.liveStatus(), "short_id": st.cfg.ShortID,
			"area": 6, "area_name": st.cfg.ParentAreaName, "area_v2_id": 236, "area_v2_name": st.cfg.AreaName,
			"area_v2_parent_name": st.cfg.ParentAreaName, "area_v2_parent_id": 6,
			"uname": st.cfg.Anchor, "face": s.url + "/_sim/cover/face.jpg", "tag_name": "", "tags": "",
			"cover_from_user": st.cfg.Cover, "keyframe": s.url + "/_sim/cover/keyframe.jpg",
			"lock_till": "0000-00-00 00:00:00", "hidden_till": "0000-00-00 00:00:00", "broadcast_type": 0,
		}
	}
	if len(data) == 0 {
		writeJSON(w, http.StatusOK, map[string]any{"code": 0, "msg": "success", "message": "success", "data": []any{}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"code": 0, "msg": "success", "message": "success", "data": data})
}

func (s *Server) handlePlayInfo(w http.ResponseWriter, r *http.Request) {
	room := s.roomParam(w, r, "room_id")
	if room == nil {
		return
	}
	st := room.state()
	data := map[string]any{
		"room_id": st.cfg.RoomID, "short_id": st.cfg.ShortID, "uid": st.cfg.UID,
		"is_hidden": false, "is_locked": false, "is_portrait": false, "live_status": st.liveStatus(),
		"hidden_till": 0, "lock_till": 0, "encrypted": false, "pwd_verified": true,
		"live_time": st.liveUnix(), "room_shield": 0, "all_special_types": []any{},
		"playurl_info": nil,
	}
	if st.live {
		qn, _ := strconv.Atoi(r.URL.Query().Get("qn"))
		if !containsQn(qn) {
			qn = acceptQn[0]
		}
		if limit := s.cfg.GuestMaxQn; limit > 0 && qn > limit {
			// Bilibili serves a guest (no SESSDATA, or a logged-out
			// one) below the quality asked for, not -101.
			if _, in := s.loggedIn(r); !in {
				qn = limit
			}
		}
		data["playurl_info"] = s.playurl(st, qn)
	}
	writeJSON(w, http.StatusOK, ok(data))
}

func containsQn(qn int) bool {
	for _, q := range acceptQn {
		if q == qn {
			return true
		}
	}
	return false
}

// Codecs says in which video codecs a format is offered.
type Codecs struct{ AVC, HEVC bool }

// Offer is which streams play info lists for a live room: per format, the
// codecs. Bilibili lists them in this order (FLV, then HLS TS, then HLS
// fMP4; AVC before HEVC), and so does the simulator.
type Offer struct {
	FLV     Codecs // protocol http_stream, format flv
	HLSTS   Codecs // protocol http_hls, format ts
	HLSfMP4 Codecs // protocol http_hls, format fmp4
}

// The offers tests ask for most. A room offers OfferDefault until SetOffer.
var (
	// OfferDefault is what a large room offers: FLV, TS and fMP4 in AVC,
	// and fMP4 in HEVC too.
	OfferDefault = Offer{FLV: Codecs{AVC: true}, HLSTS: Codecs{AVC: true}, HLSfMP4: Codecs{AVC: true, HEVC: true}}
	// OfferFLVOnly lists the AVC FLV stream alone.
	OfferFLVOnly = Offer{FLV: Codecs{AVC: true}}
	// OfferHLSOnly lists HLS streams alone, as Bilibili does for some rooms
	// and qualities.
	OfferHLSOnly = Offer{HLSTS: Codecs{AVC: true}, HLSfMP4: Codecs{AVC: true, HEVC: true}}
	// OfferHEVCOnly lists every format in HEVC alone, as for a streamer who
	// pushes HEVC before Bilibili has transcoded an AVC copy.
	OfferHEVCOnly = Offer{FLV: Codecs{HEVC: true}, HLSTS: Codecs{HEVC: true}, HLSfMP4: Codecs{HEVC: true}}
	// OfferEverything lists every format in both codecs.
	OfferEverything = Offer{FLV: Codecs{AVC: true, HEVC: true}, HLSTS: Codecs{AVC: true, HEVC: true}, HLSfMP4: Codecs{AVC: true, HEVC: true}}
)

// String lists the offer as format/codec pairs: "flv/avc ts/avc fmp4/avc
// fmp4/hevc", or "nothing".
func (o Offer) String() string {
	var out []string
	for _, f := range []struct {
		name string
		c    Codecs
	}{{"flv", o.FLV}, {"ts", o.HLSTS}, {"fmp4", o.HLSfMP4}} {
		if f.c.AVC {
			out = append(out, f.name+"/avc")
		}
		if f.c.HEVC {
			out = append(out, f.name+"/hevc")
		}
	}
	if len(out) == 0 {
		return "nothing"
	}
	return strings.Join(out, " ")
}

// ParseOffer reads an offer as the control API and cmd/bilisim take it: a
// comma-separated list of presets (default, flv, hls, hevc, all: the Offer
// variables; none: nothing) and format/codec pairs (flv/avc, ts/hevc, fmp4/avc, …), which
// add up. It returns an error naming the first item it does not know.
func ParseOffer(spec string) (Offer, error) {
	presets := map[string]Offer{"default": OfferDefault, "flv": OfferFLVOnly, "hls": OfferHLSOnly, "hevc": OfferHEVCOnly, "all": OfferEverything, "none": {}}
	var o Offer
	for item := range strings.SplitSeq(spec, ",") {
		item = strings.TrimSpace(item)
		if p, ok := presets[item]; ok {
			o = o.union(p)
			continue
		}
		format, codec, _ := strings.Cut(item, "/")
		var c Codecs
		switch codec {
		case "avc":
			c.AVC = true
		case "hevc":
			c.HEVC = true
		}
		switch {
		case c == Codecs{}:
			return Offer{}, fmt.Errorf("offer %q: want a preset (default, flv, hls, hevc, all, none) or format/codec (flv, ts or fmp4 / avc or hevc)", item)
		case format == "flv":
			o = o.union(Offer{FLV: c})
		case format == "ts":
			o = o.union(Offer{HLSTS: c})
		case format == "fmp4":
			o = o.union(Offer{HLSfMP4: c})
		default:
			return Offer{}, fmt.Errorf("offer %q: want a preset (default, flv, hls, hevc, all, none) or format/codec (flv, ts or fmp4 / avc or hevc)", item)
		}
	}
	return o, nil
}

func (o Offer) union(p Offer) Offer {
	or := func(a, b Codecs) Codecs { return Codecs{AVC: a.AVC || b.AVC, HEVC: a.HEVC || b.HEVC} }
	return Offer{FLV: or(o.FLV, p.FLV), HLSTS: or(o.HLSTS, p.HLSTS), HLSfMP4: or(o.HLSfMP4, p.HLSfMP4)}
}

// streamSuffix is how Bilibili names a stream by codec and quality: at qn
// 10000 live_<uid>_<n>_bluray (AVC) or _prohevc (HEVC); below that the AVC
// transcodes are named by bitrate (_4000 at qn 400, _2500 at 250, _1500 at
// 150; recorded URLs carry these with the matching qn=) and the HEVC ones
// _minihevc.
func streamSuffix(codec string, qn int) string {
	switch {
	case codec == "hevc" && qn >= 10000:
		return "prohevc"
	case codec == "hevc":
		return "minihevc"
	case qn >= 10000:
		return "bluray"
	}
	return strconv.Itoa(qn * 10)
}

// codecOfSuffix returns the codec a stream name's last part names, or "".
func codecOfSuffix(suffix string) string {
	switch suffix {
	case "bluray", "4000", "2500", "1500":
		return "avc"
	case "prohevc", "minihevc":
		return "hevc"
	}
	return ""
}

// streamName is a room's stream name in its CDN paths. The room id after
// _bs_ lets the simulator find the room.
func streamName(c RoomConfig, codec string, qn int) string {
	return fmt.Sprintf("live_%d_bs_%d_%s", c.UID, c.RoomID, streamSuffix(codec, qn))
}

// playurl builds playurl_info with the room's offer, each stream with
// every configured host. base_url is as on Bilibili: name.flv for FLV,
// name.m3u8 for TS and name/index.m3u8 for fMP4 (both HLS forms from
// recorded answers); the query (extra) carries expires= and a sign= that
// the CDN side checks.
func (s *Server) playurl(st roomState, qn int) map[string]any {
	s.mu.Lock()
	hosts := append([]string(nil), s.playHosts...)
	s.mu.Unlock()
	now := time.Now()
	until := now.Add(st.lifetime)
	expires := until.Unix()
	if until.After(time.Unix(expires, 0)) {
		expires++ // the query's second is never before the real end
	}
	codec := func(name, base, cdn string) map[string]any {
		var urls []map[string]any
		for _, h := range hosts {
			sign := s.randomHex(32)
			s.mu.Lock()
			s.addSignLocked(sign, signature{room: st.cfg.RoomID, expires: strconv.FormatInt(expires, 10), issued: now, until: until})
			s.mu.Unlock()
			urls = append(urls, map[string]any{
				"host":       h,
				"extra":      fmt.Sprintf("expires=%d&len=0&oi=0&pt=web&qn=%d&trid=%s&sigparams=cdn,expires,len,oi,pt,qn,trid&cdn=%s&sign=%s", expires, qn, s.randomHex(16), cdn, sign),
				"stream_ttl": int(st.lifetime.Round(time.Second).Seconds()),
			})
		}
		return map[string]any{"codec_name": name, "current_qn": qn, "accept_qn": acceptQn, "base_url": base,
			"url_info": urls, "hdr_qn": nil, "dolby_type": 0, "attr_name": ""}
	}
	offer := st.offer
	if st.hlsOnly {
		offer.FLV = Codecs{}
	}
	format := func(name string, c Codecs, base func(stream string) string, cdn string) []map[string]any {
		var codecs []map[string]any
		for _, cd := range []struct {
			name string
			on   bool
		}{{"avc", c.AVC}, {"hevc", c.HEVC}} {
			if cd.on {
				codecs = append(codecs, codec(cd.name, base(streamName(st.cfg, cd.name, qn)), cdn))
			}
		}
		if len(codecs) == 0 {
			return nil
		}
		return []map[string]any{{"format_name": name, "codec": codecs}}
	}
	streams := []map[string]any{}
	if f := format("flv", offer.FLV, func(n string) string { return "/live-bvc/375028/" + n + ".flv?" }, "cn-gotcha01"); f != nil {
		streams = append(streams, map[string]any{"protocol_name": "http_stream", "format": f})
	}
	hls := append(format("ts", offer.HLSTS, func(n string) string { return "/live-bvc/375028/" + n + ".m3u8?" }, "cn-gotcha01"),
		format("fmp4", offer.HLSfMP4, func(n string) string { return "/live-bvc/375028/" + n + "/index.m3u8?" }, "cn-gotcha208")...)
	if len(hls) > 0 {
		streams = append(streams, map[string]any{"protocol_name": "http_hls", "format": hls})
	}
	return map[string]any{
		"conf_json": `{"cdn_rate":10000,"report_interval_sec":150}`,
		"playurl": map[string]any{
			"cid": st.cfg.RoomID,
			"g_qn_desc": []map[string]any{
				{"qn": 10000, "desc": "原画", "hdr_desc": "", "attr_desc": nil},
				{"qn": 400, "desc": "蓝光", "hdr_desc": "", "attr_desc": nil},
				{"qn": 250, "desc": "超清", "hdr_desc": "", "attr_desc": nil},
				{"qn": 150, "desc": "高清", "hdr_desc": "", "attr_desc": nil},
			},
			"stream": streams,
		},
		"p2p_data": map[string]any{"p2p": false, "p2p_type": 0, "m_p2p": false, "m_servers": nil},
		"dolby_qn": nil,
	}
}

// handleDanmuInfo checks what Bilibili checks (a WBI signature made with the
// keys nav handed out, and a buvid3 cookie spi issued) and answers -352 when
// either is wrong.
func (s *Server) handleDanmuInfo(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cookie, err := r.Cookie("buvid3")
	s.mu.Lock()
	knownBuvid := err == nil && s.buvids[cookie.Value]
	s.mu.Unlock()
	if !knownBuvid || !bilibili.VerifyWBI(q, s.mixin) {
		s.writeRiskControl(w)
		return
	}
	room := s.roomParam(w, r, "id")
	if room == nil {
		return
	}
	token := s.randomHex(64)
	s.mu.Lock()
	s.tokens[token] = room.cfg.RoomID
	s.mu.Unlock()
	host, port, _ := net.SplitHostPort(s.ln.Addr().String())
	p, _ := strconv.Atoi(port)
	writeJSON(w, http.StatusOK, ok(map[string]any{
		"group": "live", "business_id": 0, "refresh_row_factor": 0.125, "refresh_rate": 100, "max_delay": 5000,
		"token":     token,
		"host_list": []map[string]any{{"host": host, "port": p, "wss_port": p, "ws_port": p}},
	}))
}

// handleNav answers as for the account a valid SESSDATA belongs to, and
// -101 (with the WBI keys, which nav hands out either way) otherwise.
func (s *Server) handleNav(w http.ResponseWriter, r *http.Request) {
	wbi := map[string]any{
		"img_url": "https://i0.hdslb.com/bfs/wbi/" + wbiImgKey + ".png",
		"sub_url": "https://i0.hdslb.com/bfs/wbi/" + wbiSubKey + ".png",
	}
	a, in := s.loggedIn(r)
	if !in {
		writeJSON(w, http.StatusOK, map[string]any{"code": -101, "message": "账号未登录", "ttl": 1, "data": map[string]any{
			"isLogin": false,
			"wbi_img": wbi,
		}})
		return
	}
	label := map[string]any{"path": "", "text": "", "label_theme": "", "text_color": "", "bg_style": 0, "bg_color": "", "border_color": "",
		"use_img_label": true, "img_label_uri_hans": "", "img_label_uri_hant": "", "img_label_uri_hans_static": "", "img_label_uri_hant_static": ""}
	writeJSON(w, http.StatusOK, ok(map[string]any{
		"isLogin": true, "email_verified": 0, "face": a.Face, "face_nft": 0, "face_nft_type": 0,
		"level_info": map[string]any{"current_level": 4, "current_min": 4500, "current_exp": 6000, "next_exp": 10800},
		"mid":        a.Mid, "mobile_verified": 1, "money": 12.5, "moral": 70,
		"official":       map[string]any{"role": 0, "title": "", "desc": "", "type": -1},
		"officialVerify": map[string]any{"type": -1, "desc": ""},
		"pendant":        map[string]any{"pid": 0, "name": "", "image": "", "expire": 0, "image_enhance": "", "image_enhance_frame": ""},
		"scores":         0, "uname": a.Uname, "vipDueDate": 0, "vipStatus": 0, "vipType": 0, "vip_pay_type": 0, "vip_theme_type": 0,
		"vip_label": label, "vip_avatar_subscript": 0, "vip_nickname_color": "",
		"vip": map[string]any{"type": 0, "status": 0, "due_date": 0, "vip_pay_type": 0, "theme_type": 0, "label": label,
			"avatar_subscript": 0, "nickname_color": "", "role": 0, "avatar_subscript_url": "", "tv_vip_status": 0, "tv_vip_pay_type": 0, "tv_due_date": 0},
		"wallet":   map[string]any{"mid": a.Mid, "bcoin_balance": 0, "coupon_balance": 0, "coupon_due_time": 0},
		"has_shop": false, "shop_url": "", "allowance_count": 0, "answer_status": 0, "is_senior_member": 0,
		"wbi_img": wbi, "is_jury": false,
	}))
}

func (s *Server) handleSpi(w http.ResponseWriter, r *http.Request) {
	b3 := strings.ToUpper(fmt.Sprintf("%s-%s-%s-%s-%s", s.randomHex(8), s.randomHex(4), s.randomHex(4), s.randomHex(4), s.randomHex(17))) + "infoc"
	s.mu.Lock()
	s.buvids[b3] = true
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"code": 0, "message": "ok", "data": map[string]any{"b_3": b3, "b_4": s.randomHex(32)}})
}
