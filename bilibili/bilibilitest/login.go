package bilibilitest

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"roomrec/bilibili"
)

// Account is a Bilibili user the simulator can log in as: a QR code is
// confirmed as one, and nav answers with its name and mid.
type Account struct {
	Mid   int64
	Uname string
	Face  string // avatar URL; default the simulator's face picture
}

// qrLifetime is how long a QR code can be scanned and confirmed, as on
// Bilibili (its docs: 180 s).
const qrLifetime = 180 * time.Second

// sessionLifetime is how long the login cookies say they last: about six
// months, as Bilibili's do.
const sessionLifetime = 180 * 24 * time.Hour

// correspondWindow is how far from the simulator's clock the timestamp in
// a correspond path may be. Bilibili rejects old paths; how old it does
// not say, so this is generous.
const correspondWindow = 10 * time.Minute

type qrState int

const (
	qrWaiting   qrState = iota // not scanned
	qrScanned                  // scanned, not confirmed
	qrConfirmed                // confirmed; the next poll hands out the session
	qrUsed                     // the session was handed out
	qrExpired
)

type qrCode struct {
	key     string
	created time.Time
	state   qrState
	mid     int64
}

// stateLocked is the code's state now, expiring it once its lifetime is
// over. s.mu must be held.
func (q *qrCode) stateLocked(now time.Time) qrState {
	if (q.state == qrWaiting || q.state == qrScanned) && now.Sub(q.created) >= qrLifetime {
		q.state = qrExpired
	}
	return q.state
}

// session is one logged-in web session: the cookies a QR login or a
// refresh handed out.
type session struct {
	mid                           int64
	sessdata, biliJct, ckMd5, sid string
	refreshToken                  string
	expires                       time.Time
	refreshDue                    bool     // cookie/info says refresh: true
	dead                          bool     // logged out, expired or retired by a confirm
	spent                         bool     // a refresh was issued from it; its refresh token is used up
	refreshCSRF                   string   // handed out by the correspond page, good for one refresh
	parent                        *session // refreshed from this one, until a confirm retires it
}

func (ss *session) validLocked(now time.Time) bool {
	return ss != nil && !ss.dead && now.Before(ss.expires)
}

// cookies are the Set-Cookie lines that hand the session out, with the
// attributes Bilibili gives them (SESSDATA alone is HttpOnly and Secure).
func (ss *session) cookies() []*http.Cookie {
	ck := func(name, value string) *http.Cookie {
		return &http.Cookie{Name: name, Value: value, Path: "/", Domain: "bilibili.com", Expires: ss.expires}
	}
	sessdata := ck("SESSDATA", ss.sessdata)
	sessdata.HttpOnly, sessdata.Secure = true, true
	return []*http.Cookie{sessdata, ck("bili_jct", ss.biliJct), ck("DedeUserID", strconv.FormatInt(ss.mid, 10)),
		ck("DedeUserID__ckMd5", ss.ckMd5), ck("sid", ss.sid)}
}

// refreshKey is the simulator's stand-in for the key pair whose public
// half Bilibili's website encrypts correspond paths with: a 1024-bit test
// key, like Bilibili's, made with openssl genpkey for this package.
const refreshKeyPEM = `-----BEGIN PRIVATE KEY-----
MIICdgIBADANBgkqhkiG9w0BAQEFAASCAmAwggJcAgEAAoGBAOHPOEDO1zHWp6wP
VXACyGPXOkaoZntwJ+bHI6obrjDZ6nYuC9mCYLsGHO7OwxJQQNpDiX+mGeLcscy4
FdkpalKmQe5okY6bInz4M/HzJu5DRhK3EUDb1f5gsPtUujiqDheK8eaR//JP5iFa
cuIhm6XgCUoTwwMzmebseh7jwDejAgMBAAECgYEAq2lXBXM+TfnpXCZjr9yc65VV
CpAJA4j28SuX+ih7CWBSqBV6L0nWTgJs8icIU52SLV15Qen/2oO3gHT5ONlEeD3m
8OcmtR1G0Dn1wKLnCmmXNk5TTFgriQxUPVdbncldp3LEOFYJkWHOkuLPqmX/puZ8
N4XYjmxPsQmQNI20XHkCQQDzySiwvllV9NreLuYPa4g/A3NDpFQcooe1Rb/pl5uf
fhdA+q+X70EzVzLQbjD7mXLaQg1E4dmyIU4g1SY57D3HAkEA7R9+P0PtGZqNbUY0
ffGo4NqMhuJIR03DRWqtlLLEnjG0aATgXGB3LDZRJuGLfOP7xrXZh32ya+zFw3tc
jgPnRQJAaBtIcCnplqaI7QcUIhOmzFoZ2BIOBWh3EbdmnEetIrBDF/G2GOkIa/dZ
8N6NtnQyMviwF/Fm+QX2CllcCLJVMwJAAMgRynOW3Ha98JZCpged3t/ZhrhINLP0
6M2pNMxCCaNwTMd3VdabjfG/4rjrlMXLlqQSy3eGlwR4wmQtseohYQJAEfzco2SJ
m/v0VXG1UxJHmX9gnykYmuUgKE0Wbf7zsDwF19Le3C4BT5j1ZShOjoFUQBqo0/WA
xCe8S273HZwKqA==
-----END PRIVATE KEY-----
-----END PRIVATE KEY-----`

var refreshKey = sync.OnceValue(func() *rsa.PrivateKey {
	block, _ := pem.Decode([]byte(refreshKeyPEM))
	if block == nil {
		panic("bilibilitest: refresh key PEM does not decode")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		panic("bilibilitest: refresh key: " + err.Error())
	}
	return key.(*rsa.PrivateKey)
})

// RefreshPublicKey returns the public key the simulator's correspond page
// expects paths to be encrypted with: pass it as the client's
// Options.RefreshKey.
func (s *Server) RefreshPublicKey() *rsa.PublicKey { return &refreshKey().PublicKey }

func (s *Server) loginRoutes(mux *http.ServeMux) {
	for _, r := range []struct {
		pattern, path string
		h             http.HandlerFunc
	}{
		{"GET " + PathQRGenerate, PathQRGenerate, s.handleQRGenerate},
		{"GET " + PathQRPoll, PathQRPoll, s.handleQRPoll},
		{"GET " + PathCookieInfo, PathCookieInfo, s.handleCookieInfo},
		{"GET " + PathCorrespond + "{path}", PathCorrespond, s.handleCorrespond},
		{"POST " + PathCookieRefresh, PathCookieRefresh, s.handleCookieRefresh},
		{"POST " + PathConfirmRefresh, PathConfirmRefresh, s.handleConfirmRefresh},
	} {
		mux.Handle(r.pattern, s.apiMiddleware(r.path, r.h))
	}
}

// AddAccount adds an account to log in as, replacing one with the same
// mid. A missing name or face gets a plausible one.
func (s *Server) AddAccount(a Account) {
	if a.Uname == "" {
		a.Uname = fmt.Sprintf("bili_%d", a.Mid)
	}
	if a.Face == "" {
		a.Face = s.url + "/_sim/cover/face.jpg"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.accounts[a.Mid] == nil {
		s.accountOrder = append(s.accountOrder, a.Mid)
	}
	s.accounts[a.Mid] = &a
}

// newSessionLocked makes a logged-in session for an account, with cookie
// values shaped like Bilibili's: SESSDATA is
// <8 hex>%2C<expiry>%2C<5 hex>%2A<more>, bili_jct 32 hex, DedeUserID__ckMd5
// 16 hex, sid 8 characters, the refresh token 32 hex. s.mu must be held.
func (s *Server) newSessionLocked(mid int64) *session {
	expires := time.Now().Add(sessionLifetime).Truncate(time.Second)
	ss := &session{
		mid:          mid,
		sessdata:     fmt.Sprintf("%s%%2C%d%%2C%s%%2A%s", s.randomHexLocked(8), expires.Unix(), s.randomHexLocked(5), s.randomHexLocked(34)),
		biliJct:      s.randomHexLocked(32),
		ckMd5:        s.randomHexLocked(16),
		sid:          s.randomHexLocked(8),
		refreshToken: s.randomHexLocked(32),
		expires:      expires,
	}
	s.sessions[ss.sessdata] = ss
	return ss
}

// sessionLocked returns the valid session a request's SESSDATA names, or
// nil. s.mu must be held.
func (s *Server) sessionLocked(r *http.Request) *session {
	ck, err := r.Cookie("SESSDATA")
	if err != nil {
		return nil
	}
	ss := s.sessions[ck.Value]
	if !ss.validLocked(time.Now()) {
		return nil
	}
	return ss
}

// loggedIn returns the account a request's cookies are logged in as.
func (s *Server) loggedIn(r *http.Request) (Account, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.sessionLocked(r)
	if ss == nil {
		return Account{}, false
	}
	if a := s.accounts[ss.mid]; a != nil {
		return *a, true
	}
	return Account{Mid: ss.mid, Uname: fmt.Sprintf("bili_%d", ss.mid)}, true
}

// writeNotLoggedIn answers -101 as the passport endpoints do.
func writeNotLoggedIn(w http.ResponseWriter) {
	writeJSON(w, http.StatusOK, map[string]any{"code": -101, "message": "账号未登录", "ttl": 1})
}

func (s *Server) handleQRGenerate(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	key := s.randomHexLocked(32)
	s.qrs[key] = &qrCode{key: key, created: time.Now()}
	s.qrOrder = append(s.qrOrder, key)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, ok(map[string]any{
		"url":        "https://account.bilibili.com/h5/account-pc/login/scan-web?navhide=1&callback=close&qrcode_key=" + key + "&from=",
		"qrcode_key": key,
	}))
}

// handleQRPoll answers the poll's data.code (86101, 86090, 86038) with
// the envelope's code 0, as Bilibili does; once the code is confirmed the
// next poll logs in: code 0, the cookies in Set-Cookie, and the refresh
// token and a cross-domain URL that repeats the cookies in data. An
// unknown key answers as an expired one.
func (s *Server) handleQRPoll(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("qrcode_key")
	now := time.Now()
	s.mu.Lock()
	q := s.qrs[key]
	state := qrExpired
	if q != nil {
		state = q.stateLocked(now)
	}
	var ss *session
	if state == qrConfirmed {
		ss = s.newSessionLocked(q.mid)
		q.state = qrUsed
	}
	s.mu.Unlock()
	poll := func(code int, message string) {
		writeJSON(w, http.StatusOK, ok(map[string]any{"url": "", "refresh_token": "", "timestamp": 0, "code": code, "message": message}))
	}
	switch state {
	case qrWaiting:
		poll(86101, "未扫码")
	case qrScanned:
		poll(86090, "二维码已扫码未确认")
	case qrConfirmed:
		for _, ck := range ss.cookies() {
			http.SetCookie(w, ck)
		}
		// The cookie values go in as they are (SESSDATA is already
		// percent-encoded), in the order of Bilibili's documented URL.
		cross := fmt.Sprintf("DedeUserID=%d&DedeUserID__ckMd5=%s&Expires=%d&SESSDATA=%s&bili_jct=%s&gourl=%s",
			ss.mid, ss.ckMd5, int64(sessionLifetime.Seconds()), ss.sessdata, ss.biliJct, url.QueryEscape("https://passport.bilibili.com"))
		writeJSON(w, http.StatusOK, ok(map[string]any{
			"url":           "https://passport.biligame.com/crossDomain?" + cross,
			"refresh_token": ss.refreshToken,
			"timestamp":     now.UnixMilli(),
			"code":          0,
			"message":       "",
		}))
	default:
		poll(86038, "二维码已失效")
	}
}

// ScanQR makes a QR code scanned, as when the phone app reads it: polls
// answer 86090 until ConfirmQR. It returns an error for a key that is
// unknown, expired or already confirmed.
func (s *Server) ScanQR(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, err := s.pendingQRLocked(key)
	if err != nil {
		return err
	}
	q.state = qrScanned
	return nil
}

// ConfirmQR confirms a QR code on the phone of account mid (scanning it
// first if ScanQR was not called): the next poll logs in as mid. It
// returns an error for a key that is unknown, expired or already
// confirmed, or a mid AddAccount did not add.
func (s *Server) ConfirmQR(key string, mid int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.accounts[mid] == nil {
		return fmt.Errorf("bilibilitest: no account %d", mid)
	}
	q, err := s.pendingQRLocked(key)
	if err != nil {
		return err
	}
	q.state, q.mid = qrConfirmed, mid
	return nil
}

// ExpireQR makes a QR code expire now, as 180 s after it was made: polls
// answer 86038. It returns an error for an unknown key.
func (s *Server) ExpireQR(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.qrs[key]
	if q == nil {
		return fmt.Errorf("bilibilitest: no QR code %q", key)
	}
	q.state = qrExpired
	return nil
}

// PendingQRKeys returns the keys of QR codes not yet confirmed or
// expired, oldest first.
func (s *Server) PendingQRKeys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var keys []string
	for _, k := range s.qrOrder {
		if st := s.qrs[k].stateLocked(now); st == qrWaiting || st == qrScanned {
			keys = append(keys, k)
		}
	}
	return keys
}

func (s *Server) pendingQRLocked(key string) (*qrCode, error) {
	q := s.qrs[key]
	if q == nil {
		return nil, fmt.Errorf("bilibilitest: no QR code %q", key)
	}
	switch q.stateLocked(time.Now()) {
	case qrWaiting, qrScanned:
		return q, nil
	case qrExpired:
		return nil, fmt.Errorf("bilibilitest: QR code %q has expired", key)
	}
	return nil, fmt.Errorf("bilibilitest: QR code %q is already confirmed", key)
}

// IssueLogin makes a session for account mid as a confirmed QR login
// would, without the QR code, and returns its cookies and refresh token.
// It returns an error for a mid AddAccount did not add.
func (s *Server) IssueLogin(mid int64) (bilibili.Credentials, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.accounts[mid] == nil {
		return bilibili.Credentials{}, fmt.Errorf("bilibilitest: no account %d", mid)
	}
	ss := s.newSessionLocked(mid)
	cred := bilibili.Credentials{RefreshToken: ss.refreshToken}
	for _, ck := range ss.cookies() {
		cred.Cookies = append(cred.Cookies, bilibili.Cookie{Name: ck.Name, Value: ck.Value, Expires: ck.Expires})
	}
	return cred, nil
}

// MakeRefreshDue makes cookie/info say refresh: true to every live
// session of account mid, as Bilibili does after a while or after a
// sensitive call.
func (s *Server) MakeRefreshDue(mid int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.sessions {
		if ss.mid == mid && !ss.dead {
			ss.refreshDue = true
		}
	}
}

// LogOut ends every session of account mid, as logging out elsewhere or
// a password change does: nav, cookie/info and the refresh endpoints
// answer -101 to their cookies, and play info serves them as a guest.
func (s *Server) LogOut(mid int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.sessions {
		if ss.mid == mid {
			ss.dead = true
		}
	}
}

// ExpireSession ends the one session whose SESSDATA is sessdata, as its
// expiry would.
func (s *Server) ExpireSession(sessdata string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss := s.sessions[sessdata]; ss != nil {
		ss.dead = true
	}
}

// SessionValid reports whether the session whose SESSDATA is sessdata is
// logged in.
func (s *Server) SessionValid(sessdata string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[sessdata].validLocked(time.Now())
}

// StreamRequestsWithCookie returns how many requests under /live-bvc/
// (FLV streams, playlists, segments, for every room) carried a Cookie
// header. Browsers send Bilibili's cookies to bilivideo.com CDN hosts
// never, so a client should not either.
func (s *Server) StreamRequestsWithCookie() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streamCookies
}

func (s *Server) noteStreamCookie(r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streamRequests++
	if r.Header.Get("Cookie") != "" {
		s.streamCookies++
	}
}

// handleCookieInfo answers whether the cookies should be refreshed, and
// the server's clock in ms; -101 without a valid session.
func (s *Server) handleCookieInfo(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ss := s.sessionLocked(r)
	due := ss != nil && ss.refreshDue
	s.mu.Unlock()
	if ss == nil {
		writeNotLoggedIn(w)
		return
	}
	writeJSON(w, http.StatusOK, ok(map[string]any{"refresh": due, "timestamp": time.Now().UnixMilli()}))
}

// handleCorrespond serves the correspond page: for a valid session and a
// path that decrypts under the refresh key to a recent refresh_<ms>, an
// HTML page with a fresh refresh_csrf in <div id="1-name">; otherwise
// Bilibili's 404 page.
func (s *Server) handleCorrespond(w http.ResponseWriter, r *http.Request) {
	fresh := false
	if ct, err := hex.DecodeString(r.PathValue("path")); err == nil {
		if msg, err := rsa.DecryptOAEP(sha256.New(), nil, refreshKey(), ct, nil); err == nil {
			if ms, found := strings.CutPrefix(string(msg), "refresh_"); found {
				if t, err := strconv.ParseInt(ms, 10, 64); err == nil {
					d := time.Since(time.UnixMilli(t))
					fresh = d < correspondWindow && d > -time.Minute
				}
			}
		}
	}
	s.mu.Lock()
	ss := s.sessionLocked(r)
	token := ""
	if ss != nil && fresh {
		token = s.randomHexLocked(32)
		ss.refreshCSRF = token
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if token == "" {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, "<!DOCTYPE html>\n<html><head><title>出错啦! - bilibili.com</title></head><body><div class=\"error-text\">404 Not Found</div></body></html>\n")
		return
	}
	fmt.Fprintf(w, `<!DOCTYPE html>
<html lang="zh-Hans">
<head>
  <meta name="spm_prefix" content="333.1193">
</head>
<title>Correspond</title>
<body>
  <div id="1-name">%s</div>
  <div id="token-iframe-app"></div>
</body>
</html>
`, html.EscapeString(token))
}

// handleCookieRefresh issues a new session for the one the cookies name,
// given its bili_jct as csrf, the refresh_csrf the correspond page just
// gave it, and its refresh token. The old session keeps working until
// confirm/refresh retires it; its refresh token is spent. Codes as on
// Bilibili: -101 not logged in, -111 csrf wrong, 86095 refresh_csrf or
// refresh token wrong.
func (s *Server) handleCookieRefresh(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	s.mu.Lock()
	ss := s.sessionLocked(r)
	var next *session
	code := 0
	switch {
	case ss == nil:
		code = -101
	case r.Form.Get("csrf") != ss.biliJct:
		code = -111
	case ss.spent || ss.refreshCSRF == "" || r.Form.Get("refresh_csrf") != ss.refreshCSRF || r.Form.Get("refresh_token") != ss.refreshToken:
		code = 86095
	default:
		next = s.newSessionLocked(ss.mid)
		next.parent = ss
		ss.spent, ss.refreshCSRF = true, ""
	}
	s.mu.Unlock()
	switch code {
	case -101:
		writeNotLoggedIn(w)
		return
	case -111:
		writeJSON(w, http.StatusOK, map[string]any{"code": -111, "message": "csrf 校验失败", "ttl": 1})
		return
	case 86095:
		writeJSON(w, http.StatusOK, map[string]any{"code": 86095, "message": "refresh_csrf 错误或 refresh_token 与 cookie 不匹配", "ttl": 1})
		return
	}
	for _, ck := range next.cookies() {
		http.SetCookie(w, ck)
	}
	writeJSON(w, http.StatusOK, ok(map[string]any{"status": 0, "message": "", "refresh_token": next.refreshToken}))
}

// handleConfirmRefresh retires the session a refresh came from, given the
// new session's cookies, its bili_jct as csrf and the old refresh token.
func (s *Server) handleConfirmRefresh(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	s.mu.Lock()
	ss := s.sessionLocked(r)
	code := 0
	switch {
	case ss == nil:
		code = -101
	case r.Form.Get("csrf") != ss.biliJct:
		code = -111
	case ss.parent == nil || r.Form.Get("refresh_token") != ss.parent.refreshToken:
		code = -400
	default:
		ss.parent.dead = true
		ss.parent = nil
	}
	s.mu.Unlock()
	switch code {
	case -101:
		writeNotLoggedIn(w)
	case -111:
		writeJSON(w, http.StatusOK, map[string]any{"code": -111, "message": "csrf 校验失败", "ttl": 1})
	case -400:
		writeJSON(w, http.StatusOK, map[string]any{"code": -400, "message": "请求错误", "ttl": 1})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"code": 0, "message": "0", "ttl": 1})
	}
}

// accountSummaries describes every account for the control API.
func (s *Server) accountSummaries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var out []string
	for _, mid := range s.accountOrder {
		a := s.accounts[mid]
		live, due := 0, 0
		for _, ss := range s.sessions {
			if ss.mid == mid && ss.validLocked(now) {
				live++
				if ss.refreshDue {
					due++
				}
			}
		}
		out = append(out, fmt.Sprintf("%d %s: %d live session(s), %d due for refresh", a.Mid, a.Uname, live, due))
	}
	return out
}

// firstAccount returns the mid of the account added first, or 0.
func (s *Server) firstAccount() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.accountOrder) == 0 {
		return 0
	}
	return s.accountOrder[0]
}

// latestPendingQR returns the newest pending QR key, or "".
func (s *Server) latestPendingQR() string {
	keys := s.PendingQRKeys()
	if len(keys) == 0 {
		return ""
	}
	return keys[len(keys)-1]
}
