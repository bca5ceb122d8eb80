package bilibilitest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// controlRoutes adds the /_sim/ control API that cmd/bilisim exposes, so a
// person can drive rooms with curl:
//
//	GET  /_sim/rooms                       rooms and their state
//	POST /_sim/rooms                       add a room (JSON RoomConfig)
//	POST /_sim/rooms/{id}/live               go live
//	POST /_sim/rooms/{id}/end                end the broadcast (PREPARING, then streams close)
//	POST /_sim/rooms/{id}/endfirst?ms=N      streams close, PREPARING N ms later
//	POST /_sim/rooms/{id}/cut                break the stream
//	POST /_sim/rooms/{id}/stall?ms=N         stream sends nothing for N ms
//	POST /_sim/rooms/{id}/notfound?ms=N      stream requests answer 404 for N ms
//	POST /_sim/rooms/{id}/title?title=T      change the title
//	POST /_sim/rooms/{id}/danmaku?text=T     send a danmaku
//	POST /_sim/rooms/{id}/sc?text=T&price=N  send a super chat (CNY)
//	POST /_sim/rooms/{id}/gift?name=G&num=N  send a gift
//	POST /_sim/rooms/{id}/guard?level=L      buy a guard (1 总督, 2 提督, 3 舰长)
//	POST /_sim/rooms/{id}/watched?n=N        send WATCHED_CHANGE
//	POST /_sim/rooms/{id}/resolution         switch resolution mid-stream
//	POST /_sim/rooms/{id}/jump?ms=N          jump stream timestamps by N ms
//	POST /_sim/rooms/{id}/hlsonly[?off=1]    play info lists no FLV (off: FLV again)
//	POST /_sim/rooms/{id}/offer?streams=S    what play info lists: a comma list of
//	                                         presets (default, flv, hls, hevc, all, none)
//	                                         and format/codec pairs (flv/avc, ts/hevc, fmp4/avc …)
//	POST /_sim/rooms/{id}/expire             stream URLs handed out so far answer 403
//	POST /_sim/rooms/{id}/lifetime?ms=N      stream URLs handed out from now on last N ms
//	POST /_sim/rooms/{id}/playlist404?ms=N   HLS playlists answer 404 for N ms
//	POST /_sim/rooms/{id}/playliststall?ms=N HLS playlists stop growing for N ms
//	POST /_sim/rooms/{id}/nodestall?ms=N     the same for URLs handed out so far only
//	POST /_sim/rooms/{id}/stale?n=N          next N playlists each go back one segment
//	POST /_sim/rooms/{id}/corrupt?n=N        next N HLS segments fail their CRC
//	POST /_sim/rooms/{id}/endlist[?off=1]    playlists end with #EXT-X-ENDLIST, not 404
//	POST /_sim/faults/risk?path=P&n=N        next N calls to P (all if empty) answer -352
//	POST /_sim/faults/412?path=P&n=N         next N calls answer HTTP 412
//	POST /_sim/faults/drop                   close every danmaku websocket
//	GET  /_sim/accounts                      accounts and their sessions
//	POST /_sim/accounts                      add an account (JSON Account)
//	POST /_sim/accounts/{mid}/logout         its sessions answer -101 from now on
//	POST /_sim/accounts/{mid}/refreshdue     cookie/info tells its sessions to refresh
//	GET  /_sim/qr                            QR keys waiting for a scan or confirmation
//	POST /_sim/qr/{key}/scan                 the phone scanned the code ("latest" for the newest)
//	POST /_sim/qr/{key}/confirm[?mid=M]      the phone confirmed, as account M (default: the first added)
//	POST /_sim/qr/{key}/expire               the code expires now
func (s *Server) controlRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /_sim/cover/", serveCover)
	mux.HandleFunc("GET /_sim/rooms", s.listRooms)
	mux.HandleFunc("POST /_sim/rooms", s.addRoomHTTP)
	mux.HandleFunc("POST /_sim/rooms/{id}/{action}", s.roomAction)
	mux.HandleFunc("POST /_sim/faults/{kind}", s.faultHTTP)
	mux.HandleFunc("GET /_sim/accounts", s.listAccounts)
	mux.HandleFunc("POST /_sim/accounts", s.addAccountHTTP)
	mux.HandleFunc("POST /_sim/accounts/{mid}/{action}", s.accountAction)
	mux.HandleFunc("GET /_sim/qr", s.listQR)
	mux.HandleFunc("POST /_sim/qr/{key}/{action}", s.qrAction)
}

func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, line := range s.accountSummaries() {
		fmt.Fprintln(w, line)
	}
}

func (s *Server) addAccountHTTP(w http.ResponseWriter, r *http.Request) {
	var a Account
	if err := json.NewDecoder(r.Body).Decode(&a); err != nil || a.Mid <= 0 {
		http.Error(w, "want a JSON account with a positive Mid", http.StatusBadRequest)
		return
	}
	s.AddAccount(a)
	fmt.Fprintf(w, "added account %d\n", a.Mid)
}

func (s *Server) accountAction(w http.ResponseWriter, r *http.Request) {
	mid, _ := strconv.ParseInt(r.PathValue("mid"), 10, 64)
	s.mu.Lock()
	known := s.accounts[mid] != nil
	s.mu.Unlock()
	if !known {
		http.Error(w, "no such account", http.StatusNotFound)
		return
	}
	switch r.PathValue("action") {
	case "logout":
		s.LogOut(mid)
	case "refreshdue":
		s.MakeRefreshDue(mid)
	default:
		http.Error(w, "unknown action; use logout or refreshdue", http.StatusNotFound)
		return
	}
	fmt.Fprintf(w, "account %d: %s done\n", mid, r.PathValue("action"))
}

func (s *Server) listQR(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, k := range s.PendingQRKeys() {
		fmt.Fprintln(w, k)
	}
}

func (s *Server) qrAction(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if key == "latest" {
		key = s.latestPendingQR()
	}
	var err error
	switch r.PathValue("action") {
	case "scan":
		err = s.ScanQR(key)
	case "confirm":
		mid, perr := strconv.ParseInt(r.URL.Query().Get("mid"), 10, 64)
		if perr != nil {
			mid = s.firstAccount()
		}
		err = s.ConfirmQR(key, mid)
	case "expire":
		err = s.ExpireQR(key)
	default:
		http.Error(w, "unknown action; use scan, confirm or expire", http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	fmt.Fprintf(w, "QR %s: %s done\n", key, r.PathValue("action"))
}

func (s *Server) listRooms(w http.ResponseWriter, r *http.Request) {
	rooms := s.allRooms()
	slices.SortFunc(rooms, func(a, b *Room) int { return cmp.Compare(a.cfg.RoomID, b.cfg.RoomID) })
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, room := range rooms {
		st := room.state()
		state := "offline"
		if st.live {
			state = "live since " + st.liveStart.Format(time.TimeOnly)
		}
		offer := st.offer
		if st.hlsOnly {
			offer.FLV = Codecs{}
		}
		fmt.Fprintf(w, "%d (short %d) %s: %q, %s, offers %s, %d stream(s), %d playlist and %d segment request(s), %d danmaku connection(s)\n",
			st.cfg.RoomID, st.cfg.ShortID, st.cfg.Anchor, st.title, state, offer, room.OpenStreams(),
			room.PlaylistRequests(), room.SegmentRequests(), s.DanmakuConnections(st.cfg.RoomID))
	}
}

func (s *Server) addRoomHTTP(w http.ResponseWriter, r *http.Request) {
	var c RoomConfig
	if err := json.NewDecoder(r.Body).Decode(&c); err != nil || c.RoomID <= 0 {
		http.Error(w, "want a JSON room with a positive RoomID", http.StatusBadRequest)
		return
	}
	s.AddRoom(c)
	fmt.Fprintf(w, "added room %d\n", c.RoomID)
}

func (s *Server) roomAction(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	room := s.Room(id)
	if room == nil {
		http.Error(w, "no such room", http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	// Missing or malformed numbers fall back to defaults: this is a
	// demo tool driven by hand, and "done" plus the state in GET
	// /_sim/rooms shows what happened.
	num := func(key string, def int) int {
		n, err := strconv.Atoi(q.Get(key))
		if err != nil {
			return def
		}
		return n
	}
	ms := func() time.Duration { return time.Duration(num("ms", 5000)) * time.Millisecond }
	text := func(key, def string) string { return cmp.Or(q.Get(key), def) }
	switch r.PathValue("action") {
	case "live":
		room.GoLive()
	case "end":
		room.EndLive()
	case "endfirst":
		room.EndLiveStreamFirst(ms())
	case "cut":
		room.CutStream()
	case "stall":
		room.StallStream(ms())
	case "notfound":
		room.StreamNotFoundFor(ms())
	case "title":
		room.SetTitle(text("title", "新标题"))
	case "danmaku":
		room.SendDanmaku(Danmaku{UID: 1, Uname: "观众", Text: text("text", "前排")})
	case "sc":
		room.SendSuperChat(SuperChat{UID: 2, Uname: "老板", Message: text("text", "加油"), Price: num("price", 30), Duration: time.Minute})
	case "gift":
		room.SendGift(Gift{UID: 3, Uname: "粉丝", GiftName: text("name", "辣条"), Num: num("num", 1), Price: 100, CoinType: "silver"})
	case "guard":
		room.SendGuard(Guard{UID: 4, Uname: "舰长大人", Level: num("level", 3), Num: 1, Price: 198000})
	case "watched":
		room.sendWatched(num("n", 1234))
	case "resolution":
		room.ChangeResolution()
	case "jump":
		room.JumpTimestamps(ms())
	case "hlsonly":
		room.OfferOnlyHLS(q.Get("off") == "")
	case "offer":
		o, err := ParseOffer(q.Get("streams"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		room.SetOffer(o)
	case "expire":
		room.ExpireURLs()
	case "lifetime":
		room.SetURLLifetime(ms())
	case "playlist404":
		room.PlaylistNotFoundFor(ms())
	case "playliststall":
		room.StallPlaylist(ms())
	case "nodestall":
		room.StallPlaylistNode(ms())
	case "stale":
		room.ServeStalePlaylists(num("n", 1))
	case "corrupt":
		room.CorruptSegments(num("n", 1))
	case "endlist":
		room.EndPlaylistsWithEndList(q.Get("off") == "")
	default:
		http.Error(w, "unknown action", http.StatusNotFound)
		return
	}
	fmt.Fprintf(w, "room %d: %s done\n", room.cfg.RoomID, r.PathValue("action"))
}

func (s *Server) faultHTTP(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("kind") == "drop" {
		s.DropDanmakuConnections()
		fmt.Fprintln(w, "dropped every danmaku connection")
		return
	}
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	if err != nil || n < 0 {
		http.Error(w, "want n, a count", http.StatusBadRequest)
		return
	}
	path := r.URL.Query().Get("path")
	switch r.PathValue("kind") {
	case "risk":
		s.RiskControl(path, n)
	case "412":
		s.HTTP412(path, n)
	case "changed":
		s.ChangedAPI(path, n)
	default:
		http.Error(w, "unknown fault; use risk, 412 or changed", http.StatusNotFound)
		return
	}
	fmt.Fprintf(w, "next %d call(s) to %q will fail\n", n, path)
}

var (
	coverOnce sync.Once
	coverJPEG []byte
)

// serveCover serves a small real JPEG for every cover and face URL.
func serveCover(w http.ResponseWriter, r *http.Request) {
	coverOnce.Do(func() {
		img := image.NewRGBA(image.Rect(0, 0, 64, 36))
		for y := range 36 {
			for x := range 64 {
				img.Set(x, y, color.RGBA{uint8(x * 4), uint8(y * 7), 160, 255})
			}
		}
		var buf bytes.Buffer
		jpeg.Encode(&buf, img, nil)
		coverJPEG = buf.Bytes()
	})
	w.Header().Set("Content-Type", "image/jpeg")
	w.Write(coverJPEG)
}
