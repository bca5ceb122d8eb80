// Package bilibilitest is a fake Bilibili for tests and demos: a real HTTP
// and websocket server on loopback that answers the API endpoints roomrec
// uses with the real JSON shapes, speaks the danmaku websocket protocol, and
// serves live streams made from real samples (ffmpeg-made, in testdata):
// FLV in H.264 and in HEVC (Bilibili's codec id 12), and HLS in fMP4 and
// MPEG-TS, each in H.264 and HEVC. Tests drive rooms through their lives
// (go live, cut the stream, change resolution, end) and inject Bilibili's
// faults (-352, HTTP 412, 404 streams, stalls, expired URLs, stalled or
// stale playlists, corrupt segments). Accounts log in by QR code (the test
// plays the phone: ScanQR, ConfirmQR), their sessions answer nav and unlock
// full quality in play info (with Config.GuestMaxQn), and go through the
// website's cookie refresh, with controls to make a refresh due or end a
// session.
//
// Production code must not import it, except cmd/bilisim.
package bilibilitest

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"roomrec/bilibili"
)

// API paths, for RiskControl, HTTP412 and Requests.
const (
	PathRoomInit  = "/room/v1/Room/room_init"
	PathRoomInfo  = "/xlive/web-room/v1/index/getInfoByRoom"
	PathPlayInfo  = "/xlive/web-room/v2/index/getRoomPlayInfo"
	PathDanmuInfo = "/xlive/web-room/v1/index/getDanmuInfo"
	// PathRoomsOfAnchors answers for many anchors at once: GET with
	// uids[]=, or POST with a JSON body {"uids": [...]}.
	PathRoomsOfAnchors = "/room/v1/Room/get_status_info_by_uids"
	PathNav            = "/x/web-interface/nav"
	PathSpi            = "/x/frontend/finger/spi"

	// passport.bilibili.com: QR login and cookie refresh.
	PathQRGenerate     = "/x/passport-login/web/qrcode/generate"
	PathQRPoll         = "/x/passport-login/web/qrcode/poll"
	PathCookieInfo     = "/x/passport-login/web/cookie/info"
	PathCookieRefresh  = "/x/passport-login/web/cookie/refresh"  // POST
	PathConfirmRefresh = "/x/passport-login/web/confirm/refresh" // POST
	// www.bilibili.com: the correspond page, PathCorrespond + <hex>.
	PathCorrespond = "/correspond/1/"
)

// The WBI keys nav hands out: the ones from the test vectors, so a
// signature can be checked by hand.
const (
	wbiImgKey = "7cd084941338484aae1ad9425b84077c"
	wbiSubKey = "4932caff0ff746eab6f01bf08b70ac45"
)

// Config configures a Server.
type Config struct {
	Addr  string  // listen address; default "127.0.0.1:0"
	Speed float64 // stream pacing (FLV tags, HLS segments): 1 = real time (default), 4 = four times faster
	// Unpaced sends streams as fast as the client takes them, for
	// throughput tests: FLV tags go out without waiting (StallStream
	// still holds them), and HLS segments are made as they are fetched,
	// each playlist listing the hlsWindow segments after the newest one
	// any client fetched (see hls.go). Speed then only moves the live
	// position a new FLV connection starts from.
	Unpaced bool
	// VideoFiller adds this many bytes to every video frame of the FLV
	// and fMP4 HLS streams (not MPEG-TS) as an H.264 or HEVC filler-data
	// NAL unit, which decoders skip: a high-bitrate stream with a real
	// stream's frame rate, for load tests. 0 = the sample as it is.
	VideoFiller int
	Logger      *slog.Logger // default: discard
	Seed        int64        // seeds compression choice, live keys, tokens and cookies; runs with one seed choose alike
	// GuestMaxQn caps the quality play info serves to a request without
	// a logged-in SESSDATA, as Bilibili does (150). 0 serves every
	// quality to anyone, which is how the simulator behaved before it
	// had logins and what most tests expect.
	GuestMaxQn int
}

// Server is the fake Bilibili: the API paths of both Bilibili hosts, the
// danmaku websocket at /sub, FLV streams under /live-bvc/ and the control
// API under /_sim/, all on one port. Its methods are safe for concurrent use.
type Server struct {
	cfg   Config
	log   *slog.Logger
	ln    net.Listener
	srv   *http.Server
	url   string
	mixin string

	ctx    context.Context // ends at Close, ending every stream and websocket
	cancel context.CancelFunc
	conns  sync.WaitGroup // stream and websocket handlers and timers; see track

	mu         sync.Mutex
	closed     bool
	rng        *rand.Rand
	rooms      map[int64]*Room // by real id
	short      map[int64]*Room // by short id
	faults     map[string]*fault
	requests   map[string]int
	requestLog []Request // every API request, in order of arrival
	playHosts  []string
	buvids     map[string]bool
	tokens     map[string]int64     // danmaku token → real room id
	signs      map[string]signature // stream URL sign= → what it was issued for
	pruneAt    int                  // len(signs) at which expired ones are next dropped

	accounts       map[int64]*Account
	accountOrder   []int64             // mids in the order added
	qrs            map[string]*qrCode  // by qrcode_key
	qrOrder        []string            // keys in the order generated
	sessions       map[string]*session // by SESSDATA
	streamCookies  int                 // stream requests that carried a Cookie header
	streamRequests int                 // every request under /live-bvc/
	// paddedFMP4 is every fMP4 sample segment with VideoFiller added, by
	// the segment it pads; nil without VideoFiller. Read-only.
	paddedFMP4 map[*fmp4Segment]*fmp4Segment
	built      segmentCache
}

// signature is what one stream URL's sign= was handed out for.
type signature struct {
	room          int64
	expires       string // the URL's expires=, which the sign covers
	issued, until time.Time
}

// minPrune is how many signatures are kept before expired ones are first
// dropped.
const minPrune = 10000

// addSignLocked records a sign handed out in play info. Expired ones are
// dropped each time the map has doubled since, so a long run that asks
// for play info often stays bounded at an amortized constant cost. s.mu
// must be held.
func (s *Server) addSignLocked(sign string, sg signature) {
	if len(s.signs) >= max(s.pruneAt, minPrune) {
		now := time.Now()
		for k, old := range s.signs {
			if !now.Before(old.until) {
				delete(s.signs, k)
			}
		}
		s.pruneAt = 2 * len(s.signs)
	}
	s.signs[sign] = sg
}

// urlAllowed reports whether a stream request's query passes the CDN's
// check: a sign play info handed out for this room, with its expires=,
// not expired and not revoked by ExpireURLs. A request without a query
// passes only if !required.
func (s *Server) urlAllowed(room *Room, q url.Values, required bool) bool {
	if !q.Has("sign") && !q.Has("expires") {
		return !required
	}
	s.mu.Lock()
	sg, ok := s.signs[q.Get("sign")]
	s.mu.Unlock()
	if !ok || sg.room != room.cfg.RoomID || sg.expires != q.Get("expires") {
		return false
	}
	room.mu.Lock()
	revoked := room.revokedAt
	room.mu.Unlock()
	return time.Now().Before(sg.until) && sg.issued.After(revoked)
}

// signedAt returns when play info handed out the sign= of a stream
// request's query (zero for one it never handed out).
func (s *Server) signedAt(q url.Values) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.signs[q.Get("sign")].issued
}

// fault is a count of answers still to spoil on one path.
type fault struct {
	risk, http412, changed int
}

// NewServer starts a Server listening on cfg.Addr and serving at once. It
// returns an error if it cannot listen there.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Speed <= 0 {
		cfg.Speed = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if _, err := loadSamples(); err != nil {
		return nil, err
	}
	hls, err := loadHLSSamples()
	if err != nil {
		return nil, err
	}
	var padded map[*fmp4Segment]*fmp4Segment
	if cfg.VideoFiller > 0 {
		if padded, err = hls.padFMP4(cfg.VideoFiller); err != nil {
			return nil, fmt.Errorf("bilibilitest: VideoFiller: %w", err)
		}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("bilibilitest: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		ln:       ln,
		url:      "http://" + ln.Addr().String(),
		mixin:    bilibili.WBIMixinKey(wbiImgKey, wbiSubKey),
		ctx:      ctx,
		cancel:   cancel,
		rng:      rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed)),
		rooms:    map[int64]*Room{},
		short:    map[int64]*Room{},
		faults:   map[string]*fault{},
		requests: map[string]int{},
		buvids:   map[string]bool{},
		tokens:   map[string]int64{},
		signs:    map[string]signature{},
		accounts: map[int64]*Account{},
		qrs:      map[string]*qrCode{},
		sessions: map[string]*session{},

		paddedFMP4: padded,
	}
	s.playHosts = []string{s.url}
	s.srv = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// Start starts a Server for a test and closes it when the test ends. It
// fails the test if the server cannot start.
func Start(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	s, err := NewServer(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

// URL is the base URL to use as BILIBILI_API_URL.
func (s *Server) URL() string { return s.url }

// Close closes the listener and every stream and websocket, and waits for
// their handlers to return. It does not wait for clients: a connection stuck
// on a client that stopped reading is closed under it. Calling it again does
// nothing.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	// Close, not Shutdown: streams never go idle, and a test's cleanup
	// must not wait on a client. Hijacked websockets are closed by the
	// context.AfterFunc each handler registered.
	s.srv.Close()
	s.conns.Wait()
}

// track counts a long-lived handler or goroutine so that Close waits for it.
// It reports false once Close has begun; the caller must then not start.
// Counting under s.mu keeps Add from racing with Close's Wait.
func (s *Server) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns.Add(1)
	return true
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	api := map[string]http.HandlerFunc{
		PathRoomInit:  s.handleRoomInit,
		PathRoomInfo:  s.handleRoomInfo,
		PathPlayInfo:  s.handlePlayInfo,
		PathDanmuInfo: s.handleDanmuInfo,
		PathNav:       s.handleNav,
		PathSpi:       s.handleSpi,
	}
	for path, h := range api {
		mux.Handle("GET "+path, s.apiMiddleware(path, h))
	}
	for _, method := range []string{"GET ", "POST "} {
		mux.Handle(method+PathRoomsOfAnchors, s.apiMiddleware(PathRoomsOfAnchors, s.handleRoomsOfAnchors))
	}
	s.loginRoutes(mux)
	mux.HandleFunc("GET /sub", s.handleDanmaku)
	mux.HandleFunc("GET /live-bvc/", s.handleStream)
	s.controlRoutes(mux)
	return mux
}

// apiMiddleware counts requests and applies injected faults.
func (s *Server) apiMiddleware(path string, next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests[path]++
		s.requestLog = append(s.requestLog, Request{Path: path, At: time.Now()})
		kind := s.takeFault(path)
		if kind == "" {
			kind = s.takeFault("")
		}
		s.mu.Unlock()
		switch kind {
		case "risk":
			s.writeRiskControl(w)
		case "412":
			writeJSON(w, http.StatusPreconditionFailed, map[string]any{"code": -412, "message": "请求被拦截", "ttl": 1, "data": nil})
		case "changed":
			// Success, in a shape no client of today's API can read.
			writeJSON(w, http.StatusOK, map[string]any{"code": 0, "message": "0", "ttl": 1, "data": "moved to v3"})
		default:
			next(w, r)
		}
	})
}

// takeFault uses up one injected fault on path, if any. s.mu must be held.
func (s *Server) takeFault(path string) string {
	f := s.faults[path]
	switch {
	case f == nil:
		return ""
	case f.risk > 0:
		f.risk--
		return "risk"
	case f.http412 > 0:
		f.http412--
		return "412"
	case f.changed > 0:
		f.changed--
		return "changed"
	}
	return ""
}

// RiskControl makes the next n calls to path ("" for every API path) answer
// code -352, as Bilibili's risk control does.
func (s *Server) RiskControl(path string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faultFor(path).risk = n
}

// HTTP412 makes the next n calls to path ("" for every API path) answer HTTP
// 412, as Bilibili's gateway does when it blocks a client.
func (s *Server) HTTP412(path string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faultFor(path).http412 = n
}

// ChangedAPI makes the next n calls to path ("" for every API path) answer
// success with data of a shape the client does not know, as when Bilibili
// changes an endpoint.
func (s *Server) ChangedAPI(path string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faultFor(path).changed = n
}

func (s *Server) faultFor(path string) *fault {
	f := s.faults[path]
	if f == nil {
		f = &fault{}
		s.faults[path] = f
	}
	return f
}

// Requests returns how many requests an API path has had, rejected ones
// included; path "" counts every API path.
func (s *Server) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if path != "" {
		return s.requests[path]
	}
	n := 0
	for _, c := range s.requests {
		n += c
	}
	return n
}

// Request is one API request the server had: its path and when it came.
type Request struct {
	Path string
	At   time.Time
}

// RequestLog returns every API request so far, rejected ones included, in
// the order they came: what a test counts a rate or a burst from.
func (s *Server) RequestLog() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requestLog)
}

// SetPlayHosts sets the url_info hosts of play info, in order; the default
// is the server itself. A test lists a dead host first to exercise fallback.
func (s *Server) SetPlayHosts(hosts ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.playHosts = append([]string(nil), hosts...)
}

// AddRoom adds a room, replacing one with the same real id, and returns it.
// Missing fields get plausible values; a room added Live has been live for
// a minute.
func (s *Server) AddRoom(c RoomConfig) *Room {
	if c.UID == 0 {
		c.UID = c.RoomID * 7
	}
	if c.Anchor == "" {
		c.Anchor = fmt.Sprintf("主播%d", c.RoomID)
	}
	if c.Title == "" {
		c.Title = "直播间 " + fmt.Sprint(c.RoomID)
	}
	if c.Cover == "" {
		c.Cover = fmt.Sprintf("%s/_sim/cover/%d.jpg", s.url, c.RoomID)
	}
	if c.AreaName == "" {
		c.AreaName, c.ParentAreaName = "聊天电台", "娱乐"
	}
	r := newRoom(s, c)
	s.mu.Lock()
	s.rooms[c.RoomID] = r
	if c.ShortID != 0 {
		s.short[c.ShortID] = r
	}
	s.mu.Unlock()
	if c.Live {
		r.startLive(time.Now().Add(-time.Minute), false)
	}
	return r
}

// RemoveRoom makes Bilibili forget a room, as when it is closed for good.
func (s *Server) RemoveRoom(id int64) {
	s.mu.Lock()
	r := s.lookup(id)
	if r != nil {
		delete(s.rooms, r.cfg.RoomID)
		delete(s.short, r.cfg.ShortID)
	}
	s.mu.Unlock()
	if r != nil {
		r.closeStreams(false)
	}
}

// Room returns the room with a real or short id, or nil.
func (s *Server) Room(id int64) *Room {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lookup(id)
}

func (s *Server) lookup(id int64) *Room {
	if r := s.rooms[id]; r != nil {
		return r
	}
	return s.short[id]
}

// roomOfAnchor returns the room whose anchor has uid, or nil.
func (s *Server) roomOfAnchor(uid int64) *Room {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rooms {
		if r.cfg.UID == uid {
			return r
		}
	}
	return nil
}

func (s *Server) allRooms() []*Room {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Room, 0, len(s.rooms))
	for _, r := range s.rooms {
		out = append(out, r)
	}
	return out
}

// DropDanmakuConnections closes every websocket abruptly.
func (s *Server) DropDanmakuConnections() {
	for _, r := range s.allRooms() {
		r.dropWebsockets()
	}
}

// DanmakuConnections returns how many authenticated websockets a room has.
func (s *Server) DanmakuConnections(roomID int64) int {
	r := s.Room(roomID)
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ws)
}

// intn draws from the seeded rng, so a run with the same Seed makes the same
// choices in the same order.
func (s *Server) intn(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.IntN(n)
}

// randomHex returns n hex digits from the seeded rng, for tokens, buvids and
// signatures that only need to look opaque.
func (s *Server) randomHex(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.randomHexLocked(n)
}

// randomHexLocked is randomHex for a caller holding s.mu.
func (s *Server) randomHexLocked(n int) string {
	const hex = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = hex[s.rng.IntN(16)]
	}
	return string(b)
}
