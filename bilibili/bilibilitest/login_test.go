package bilibilitest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The documented shapes of the login endpoints (bilibili-API-collect:
// docs/login/login_action/QR.md, docs/login/login_info.md,
// docs/login/cookie_refresh.md), trimmed to the keys a client may read.
const (
	docQRGenerate   = `{"code":0,"message":"0","ttl":1,"data":{"url":"https://passport.bilibili.com/h5-app/passport/login/scan?navhide=1&qrcode_key=8587cf8106a0b863c46d6bab913537f6&from=","qrcode_key":"8587cf8106a0b863c46d6bab913537f6"}}`
	docQRPollWait   = `{"code":0,"message":"0","ttl":1,"data":{"url":"","refresh_token":"","timestamp":0,"code":86101,"message":"未扫码"}}`
	docQRPollOK     = `{"code":0,"message":"0","ttl":1,"data":{"url":"https://passport.biligame.com/crossDomain?DedeUserID=1&DedeUserID__ckMd5=2&Expires=3&SESSDATA=4&bili_jct=5&gourl=https%3A%2F%2Fpassport.bilibili.com","refresh_token":"x","timestamp":1662363009601,"code":0,"message":""}}`
	docNavLoggedIn  = `{"code":0,"message":"0","ttl":1,"data":{"isLogin":true,"email_verified":1,"face":"https://i0.hdslb.com/bfs/face/a.jpg","face_nft":0,"face_nft_type":0,"level_info":{"current_level":6,"current_min":28800,"current_exp":52689},"mid":293793435,"mobile_verified":1,"money":172.4,"moral":70,"official":{"role":0,"title":"","desc":"","type":-1},"officialVerify":{"type":-1,"desc":""},"pendant":{"pid":2511,"name":"","image":"","expire":0,"image_enhance":"","image_enhance_frame":""},"scores":0,"uname":"社会易姐QwQ","vipDueDate":1707494400000,"vipStatus":1,"vipType":2,"vip_pay_type":0,"vip_theme_type":0,"vip_label":{"path":"","text":"年度大会员","label_theme":"annual_vip"},"vip_avatar_subscript":1,"vip_nickname_color":"#FB7299","vip":{"type":2,"status":1,"due_date":1707494400000,"vip_pay_type":0,"theme_type":0,"label":{"path":"","text":"","label_theme":""},"avatar_subscript":1,"nickname_color":"","role":3},"wallet":{"mid":293793435,"bcoin_balance":5,"coupon_balance":5,"coupon_due_time":0},"has_shop":true,"shop_url":"","allowance_count":0,"answer_status":0,"is_senior_member":1,"wbi_img":{"img_url":"https://i0.hdslb.com/bfs/wbi/653657f524a547ac981ded72ea172057.png","sub_url":"https://i0.hdslb.com/bfs/wbi/6e4909c702f846728e64f6007736a338.png"},"is_jury":false}}`
	docCookieInfo   = `{"code":0,"message":"0","ttl":1,"data":{"refresh":false,"timestamp":1684466082562}}`
	docNotLoggedIn  = `{"code":-101,"message":"账号未登录","ttl":1}`
	docRefresh      = `{"code":0,"message":"0","ttl":1,"data":{"status":0,"message":"","refresh_token":"ae1bd1149b56af9743ffe7bbbeff3e51"}}`
	docConfirm      = `{"code":0,"message":"0","ttl":1}`
	testAccountMid  = 293793435
	testAccountName = "测试账号"
)

// do sends a request with the given Cookie header and form (POST if not
// nil) and returns status, headers and body.
func do(t *testing.T, u, cookie string, form url.Values) (int, http.Header, []byte) {
	t.Helper()
	method, body := http.MethodGet, io.Reader(nil)
	if form != nil {
		method, body = http.MethodPost, strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func code(t *testing.T, body []byte) int {
	t.Helper()
	var env struct{ Code int }
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	return env.Code
}

// cookieHeader turns Set-Cookie lines into the Cookie header a browser
// would send back.
func cookieHeader(h http.Header) string {
	var parts []string
	for _, line := range h.Values("Set-Cookie") {
		if ck, err := http.ParseSetCookie(line); err == nil {
			parts = append(parts, ck.Name+"="+ck.Value)
		}
	}
	return strings.Join(parts, "; ")
}

// login is a session as a test holds it: the Cookie header and the values
// the refresh calls need.
type login struct {
	cookie, csrf, sessdata, refreshToken string
}

func newLogin(t *testing.T, s *Server) login {
	t.Helper()
	cred, err := s.IssueLogin(testAccountMid)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, ck := range cred.Cookies {
		parts = append(parts, ck.Name+"="+ck.Value)
	}
	return login{strings.Join(parts, "; "), cred.CSRF(), cred.Value("SESSDATA"), cred.RefreshToken}
}

func loginServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	s := Start(t, cfg)
	s.AddAccount(Account{Mid: testAccountMid, Uname: testAccountName})
	return s
}

func pathFor(t *testing.T, pub *rsa.PublicKey, ts time.Time) string {
	t.Helper()
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, fmt.Appendf(nil, "refresh_%d", ts.UnixMilli()), nil)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(ct)
}

var refreshCSRFPattern = regexp.MustCompile(`<div id="1-name">([0-9a-f]{32})</div>`)

// refreshCSRF fetches the correspond page as a client would.
func refreshCSRF(t *testing.T, s *Server, l login) string {
	t.Helper()
	status, _, body := do(t, s.URL()+PathCorrespond+pathFor(t, s.RefreshPublicKey(), time.Now()), l.cookie, nil)
	m := refreshCSRFPattern.FindSubmatch(body)
	if status != http.StatusOK || m == nil {
		t.Fatalf("correspond page: %d %s, want 200 with a refresh_csrf", status, body)
	}
	return string(m[1])
}

// qrKey generates a QR code and returns its key.
func qrKey(t *testing.T, s *Server) string {
	t.Helper()
	_, _, body := do(t, s.URL()+PathQRGenerate, "", nil)
	var gen struct {
		Data struct {
			Key string `json:"qrcode_key"`
		}
	}
	if err := json.Unmarshal(body, &gen); err != nil || gen.Data.Key == "" {
		t.Fatalf("generate: %s", body)
	}
	return gen.Data.Key
}

func TestLoginAPIShapes(t *testing.T) {
	s := loginServer(t, Config{})
	u := s.URL()
	check := func(name string, body []byte, doc string) {
		t.Helper()
		var want, got any
		if err := json.Unmarshal([]byte(doc), &want); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("%s: body %s: %v", name, body, err)
		}
		if d := shapeDiff("", want, got); len(d) > 0 {
			t.Errorf("%s: shape differs from the real one:\n%s\nbody: %s", name, strings.Join(d, "\n"), body)
		}
	}
	_, _, body := do(t, u+PathQRGenerate, "", nil)
	check("generate", body, docQRGenerate)
	var gen struct {
		Data struct {
			URL string `json:"url"`
			Key string `json:"qrcode_key"`
		}
	}
	json.Unmarshal(body, &gen)
	qrURL, err := url.Parse(gen.Data.URL)
	if err != nil || len(gen.Data.Key) != 32 || qrURL.Query().Get("qrcode_key") != gen.Data.Key || qrURL.Scheme != "https" {
		t.Errorf("generate: url %q key %q, want an https URL carrying the 32-character key", gen.Data.URL, gen.Data.Key)
	}
	_, _, body = do(t, u+PathQRPoll+"?qrcode_key="+gen.Data.Key, "", nil)
	check("poll waiting", body, docQRPollWait)
	s.ConfirmQR(gen.Data.Key, testAccountMid)
	_, hdr, body := do(t, u+PathQRPoll+"?qrcode_key="+gen.Data.Key, "", nil)
	check("poll confirmed", body, docQRPollOK)

	_, _, body = do(t, u+PathNav, cookieHeader(hdr), nil)
	check("nav logged in", body, docNavLoggedIn)
	var nav struct {
		Data struct {
			IsLogin bool   `json:"isLogin"`
			Uname   string `json:"uname"`
			Mid     int64  `json:"mid"`
		}
	}
	json.Unmarshal(body, &nav)
	if !nav.Data.IsLogin || nav.Data.Uname != testAccountName || nav.Data.Mid != testAccountMid {
		t.Errorf("nav = %+v, want logged in as %d %s", nav.Data, testAccountMid, testAccountName)
	}

	l := newLogin(t, s)
	_, _, body = do(t, u+PathCookieInfo+"?csrf="+l.csrf, l.cookie, nil)
	check("cookie/info", body, docCookieInfo)
	_, _, body = do(t, u+PathCookieInfo, "", nil)
	check("cookie/info logged out", body, docNotLoggedIn)
	if c := code(t, body); c != -101 {
		t.Errorf("cookie/info logged out: code %d, want -101", c)
	}
	_, hdr, body = do(t, u+PathCookieRefresh, l.cookie, url.Values{"csrf": {l.csrf}, "refresh_csrf": {refreshCSRF(t, s, l)}, "source": {"main_web"}, "refresh_token": {l.refreshToken}})
	check("cookie/refresh", body, docRefresh)
	next := cookieHeader(hdr)
	var newJct string
	for _, line := range hdr.Values("Set-Cookie") {
		if ck, _ := http.ParseSetCookie(line); ck != nil && ck.Name == "bili_jct" {
			newJct = ck.Value
		}
	}
	_, _, body = do(t, u+PathConfirmRefresh, next, url.Values{"csrf": {newJct}, "refresh_token": {l.refreshToken}})
	check("confirm/refresh", body, docConfirm)
	if c := code(t, body); c != 0 {
		t.Errorf("confirm/refresh: code %d, want 0", c)
	}
}

func TestPollSetsTheLoginCookies(t *testing.T) {
	s := loginServer(t, Config{})
	key := qrKey(t, s)
	if _, hdr, _ := do(t, s.URL()+PathQRPoll+"?qrcode_key="+key, "", nil); len(hdr.Values("Set-Cookie")) != 0 {
		t.Error("a waiting poll set cookies")
	}
	if err := s.ConfirmQR(key, testAccountMid); err != nil {
		t.Fatal(err)
	}
	_, hdr, body := do(t, s.URL()+PathQRPoll+"?qrcode_key="+key, "", nil)
	got := map[string]*http.Cookie{}
	for _, line := range hdr.Values("Set-Cookie") {
		ck, err := http.ParseSetCookie(line)
		if err != nil {
			t.Fatalf("Set-Cookie %q: %v", line, err)
		}
		got[ck.Name] = ck
		if ck.Domain != "bilibili.com" || ck.Path != "/" || time.Until(ck.Expires) < 100*24*time.Hour {
			t.Errorf("%s: Domain %q Path %q Expires %s, want bilibili.com, / and months ahead", ck.Name, ck.Domain, ck.Path, ck.Expires)
		}
		if want := ck.Name == "SESSDATA"; ck.HttpOnly != want || ck.Secure != want {
			t.Errorf("%s: HttpOnly %v Secure %v, want %v (SESSDATA alone is)", ck.Name, ck.HttpOnly, ck.Secure, want)
		}
	}
	for _, name := range []string{"SESSDATA", "bili_jct", "DedeUserID", "DedeUserID__ckMd5", "sid"} {
		if got[name] == nil || got[name].Value == "" {
			t.Errorf("no %s cookie", name)
		}
	}
	if sd := got["SESSDATA"]; sd != nil && !regexp.MustCompile(`^[0-9a-f]{8}%2C\d{10}%2C[0-9a-f]{5}%2A[0-9a-f]+$`).MatchString(sd.Value) {
		t.Errorf("SESSDATA %q is not shaped like Bilibili's", sd.Value)
	}
	if got["DedeUserID"] != nil && got["DedeUserID"].Value != fmt.Sprint(testAccountMid) {
		t.Errorf("DedeUserID %q, want the mid", got["DedeUserID"].Value)
	}
	var poll struct {
		Data struct {
			URL          string `json:"url"`
			RefreshToken string `json:"refresh_token"`
			Timestamp    int64  `json:"timestamp"`
			Code         int    `json:"code"`
		}
	}
	json.Unmarshal(body, &poll)
	if poll.Data.Code != 0 || len(poll.Data.RefreshToken) != 32 || time.Since(time.UnixMilli(poll.Data.Timestamp)).Abs() > time.Minute {
		t.Errorf("poll data %+v, want code 0, a refresh token and the time in ms", poll.Data)
	}
	if got["SESSDATA"] != nil && !strings.Contains(poll.Data.URL, "SESSDATA="+got["SESSDATA"].Value) {
		t.Errorf("cross-domain URL %q does not repeat SESSDATA", poll.Data.URL)
	}
	if !s.SessionValid(got["SESSDATA"].Value) {
		t.Error("the session the poll set is not valid")
	}
}

func TestQRControls(t *testing.T) {
	s := loginServer(t, Config{})
	poll := func(key string) int {
		_, _, body := do(t, s.URL()+PathQRPoll+"?qrcode_key="+key, "", nil)
		var p struct{ Data struct{ Code int } }
		json.Unmarshal(body, &p)
		return p.Data.Code
	}
	key := qrKey(t, s)
	if err := s.ScanQR("nope"); err == nil {
		t.Error("ScanQR of an unknown key succeeded")
	}
	if err := s.ConfirmQR(key, 42); err == nil {
		t.Error("ConfirmQR as an unknown account succeeded")
	}
	if c := poll(key); c != 86101 {
		t.Errorf("poll before scan = %d, want 86101", c)
	}
	s.ScanQR(key)
	if c := poll(key); c != 86090 {
		t.Errorf("poll after scan = %d, want 86090", c)
	}
	if err := s.ConfirmQR(key, testAccountMid); err != nil {
		t.Fatal(err)
	}
	if err := s.ConfirmQR(key, testAccountMid); err == nil {
		t.Error("a code was confirmed twice")
	}
	if keys := s.PendingQRKeys(); len(keys) != 0 {
		t.Errorf("pending keys %q after confirm, want none", keys)
	}
	if c := poll(key); c != 0 {
		t.Errorf("poll after confirm = %d, want 0", c)
	}
	if c := poll(key); c != 86038 {
		t.Errorf("second poll after confirm = %d, want 86038 (the key is used up)", c)
	}
	if c := poll("unknown"); c != 86038 {
		t.Errorf("poll of an unknown key = %d, want 86038", c)
	}
}

func TestNavAndSessions(t *testing.T) {
	s := loginServer(t, Config{})
	l := newLogin(t, s)
	nav := func(cookie string) int {
		_, _, body := do(t, s.URL()+PathNav, cookie, nil)
		return code(t, body)
	}
	if c := nav(l.cookie); c != 0 {
		t.Errorf("nav with a session = %d, want 0", c)
	}
	if c := nav("SESSDATA=made-up"); c != -101 {
		t.Errorf("nav with an unknown SESSDATA = %d, want -101", c)
	}
	s.ExpireSession(l.sessdata)
	if c := nav(l.cookie); c != -101 || s.SessionValid(l.sessdata) {
		t.Errorf("nav after ExpireSession = %d, want -101", c)
	}
	a, b := newLogin(t, s), newLogin(t, s)
	s.LogOut(testAccountMid)
	if nav(a.cookie) != -101 || nav(b.cookie) != -101 {
		t.Error("LogOut left a session of the account logged in")
	}
}

func TestCorrespondPage(t *testing.T) {
	s := loginServer(t, Config{})
	l := newLogin(t, s)
	other, _ := rsa.GenerateKey(rand.Reader, 1024)
	pub := s.RefreshPublicKey()
	tests := []struct {
		name, path, cookie string
		want               int
	}{
		{"fresh path, logged in", pathFor(t, pub, time.Now()), l.cookie, 200},
		{"no cookie", pathFor(t, pub, time.Now()), "", 404},
		{"unknown session", pathFor(t, pub, time.Now()), "SESSDATA=x", 404},
		{"old timestamp", pathFor(t, pub, time.Now().Add(-time.Hour)), l.cookie, 404},
		{"another key", pathFor(t, &other.PublicKey, time.Now()), l.cookie, 404},
		{"not hex", "zz", l.cookie, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, body := do(t, s.URL()+PathCorrespond+tt.path, tt.cookie, nil)
			if status != tt.want || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
				t.Errorf("status %d (%s), want %d and HTML", status, hdr.Get("Content-Type"), tt.want)
			}
			if (status == 200) != refreshCSRFPattern.Match(body) {
				t.Errorf("page %s: refresh_csrf present %v, want %v", body, !(status == 200), status == 200)
			}
		})
	}
}

func TestRefreshChecks(t *testing.T) {
	s := loginServer(t, Config{})
	refresh := func(l login, form url.Values) (int, http.Header) {
		t.Helper()
		_, hdr, body := do(t, s.URL()+PathCookieRefresh, l.cookie, form)
		return code(t, body), hdr
	}
	form := func(l login, csrf, refreshCSRF, token string) url.Values {
		return url.Values{"csrf": {csrf}, "refresh_csrf": {refreshCSRF}, "source": {"main_web"}, "refresh_token": {token}}
	}
	l := newLogin(t, s)
	if c, _ := refresh(l, form(l, l.csrf, "0123", l.refreshToken)); c != 86095 {
		t.Errorf("refresh without the correspond page = %d, want 86095", c)
	}
	rc := refreshCSRF(t, s, l)
	if c, _ := refresh(l, form(l, "wrong", rc, l.refreshToken)); c != -111 {
		t.Errorf("refresh with a wrong csrf = %d, want -111", c)
	}
	if c, _ := refresh(l, form(l, l.csrf, rc, "wrong")); c != 86095 {
		t.Errorf("refresh with a wrong refresh token = %d, want 86095", c)
	}
	if c, _ := refresh(login{}, form(l, l.csrf, rc, l.refreshToken)); c != -101 {
		t.Errorf("refresh without cookies = %d, want -101", c)
	}
	c, hdr := refresh(l, form(l, l.csrf, rc, l.refreshToken))
	if c != 0 || len(hdr.Values("Set-Cookie")) != 5 {
		t.Fatalf("refresh = %d with %d cookies, want 0 and five", c, len(hdr.Values("Set-Cookie")))
	}
	next := cookieHeader(hdr)
	var newJct, newSess string
	for _, line := range hdr.Values("Set-Cookie") {
		ck, _ := http.ParseSetCookie(line)
		switch ck.Name {
		case "bili_jct":
			newJct = ck.Value
		case "SESSDATA":
			newSess = ck.Value
		}
	}
	if !s.SessionValid(l.sessdata) || !s.SessionValid(newSess) {
		t.Fatal("want the old and the new session valid until confirm")
	}
	// The old session's refresh token is spent.
	if c, _ := refresh(l, form(l, l.csrf, refreshCSRF(t, s, l), l.refreshToken)); c != 86095 {
		t.Errorf("a second refresh from the old session = %d, want 86095", c)
	}

	confirm := func(cookie, csrf, token string) int {
		_, _, body := do(t, s.URL()+PathConfirmRefresh, cookie, url.Values{"csrf": {csrf}, "refresh_token": {token}})
		return code(t, body)
	}
	if c := confirm(next, l.csrf, l.refreshToken); c != -111 {
		t.Errorf("confirm with the old csrf = %d, want -111", c)
	}
	if c := confirm(next, newJct, "wrong"); c != -400 {
		t.Errorf("confirm with a wrong old refresh token = %d, want -400", c)
	}
	if !s.SessionValid(l.sessdata) {
		t.Fatal("a failed confirm retired the old session")
	}
	if c := confirm(next, newJct, l.refreshToken); c != 0 {
		t.Fatalf("confirm = %d, want 0", c)
	}
	if s.SessionValid(l.sessdata) || !s.SessionValid(newSess) {
		t.Error("after confirm, want the old session retired and the new one valid")
	}
	if c := confirm(next, newJct, l.refreshToken); c != -400 {
		t.Errorf("a second confirm = %d, want -400", c)
	}
}

func TestCookieInfoRefreshDue(t *testing.T) {
	s := loginServer(t, Config{})
	l := newLogin(t, s)
	due := func() bool {
		_, _, body := do(t, s.URL()+PathCookieInfo+"?csrf="+l.csrf, l.cookie, nil)
		var info struct{ Data struct{ Refresh bool } }
		json.Unmarshal(body, &info)
		return info.Data.Refresh
	}
	if due() {
		t.Error("a new session is due for refresh")
	}
	s.MakeRefreshDue(testAccountMid)
	if !due() {
		t.Error("MakeRefreshDue did not make the session due")
	}
}

func TestGuestQuality(t *testing.T) {
	s := loginServer(t, Config{GuestMaxQn: 150})
	room := s.AddRoom(RoomConfig{RoomID: 5440, UID: 9617619, Live: true})
	room.SetOffer(OfferEverything)
	l := newLogin(t, s)
	play := func(qn int, cookie string) string {
		t.Helper()
		_, _, body := do(t, fmt.Sprintf("%s%s?room_id=5440&protocol=0,1&format=0,1,2&codec=0,1&qn=%d&platform=web&ptype=8&dolby=5&panorama=1", s.URL(), PathPlayInfo, qn), cookie, nil)
		return string(body)
	}
	tests := []struct {
		name, cookie string
		qn           int
		want         []string
	}{
		{"guest asking the original", "", 10000, []string{`"current_qn":150`, `_1500.flv?`, `_1500/index.m3u8?`, `_minihevc.flv?`, `qn=150`}},
		{"guest asking 150", "", 150, []string{`"current_qn":150`, `_1500.flv?`}},
		{"logged-out session", "SESSDATA=gone", 10000, []string{`"current_qn":150`}},
		{"logged in, original", l.cookie, 10000, []string{`"current_qn":10000`, `_bluray.flv?`, `_prohevc.flv?`, `_bluray/index.m3u8?`, `qn=10000`}},
		{"logged in, 400", l.cookie, 400, []string{`"current_qn":400`, `_4000.flv?`, `_minihevc/index.m3u8?`, `qn=400`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := play(tt.qn, tt.cookie)
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("play info lacks %s", w)
				}
			}
		})
	}
	// Every quality's names are served.
	for _, name := range []string{"live_9617619_bs_5440_1500.flv", "live_9617619_bs_5440_4000.flv", "live_9617619_bs_5440_minihevc.flv", "live_9617619_bs_5440_minihevc/index.m3u8"} {
		u := streamURLNamed(t, s, name)
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s answered %s", name, resp.Status)
		}
	}
}

// streamURLNamed returns a signed URL for a stream file by name, with the
// query of a URL play info handed out.
func streamURLNamed(t *testing.T, s *Server, name string) string {
	t.Helper()
	_, _, body := do(t, s.URL()+PathPlayInfo+"?room_id=5440&qn=10000", "", nil)
	m := regexp.MustCompile(`"extra":"([^"]+)"`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no extra in %s", body)
	}
	extra := strings.ReplaceAll(string(m[1]), `\u0026`, "&")
	return s.URL() + "/live-bvc/375028/" + name + "?" + extra
}

func TestStreamRequestsWithCookie(t *testing.T) {
	s := loginServer(t, Config{})
	s.AddRoom(RoomConfig{RoomID: 5440, UID: 9617619, Live: true})
	u := streamURLNamed(t, s, "live_9617619_bs_5440_bluray.flv")
	for _, cookie := range []string{"", "SESSDATA=x"} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if n := s.StreamRequestsWithCookie(); n != 1 {
		t.Errorf("StreamRequestsWithCookie = %d, want 1", n)
	}
}

func TestLoginControlAPI(t *testing.T) {
	s := Start(t, Config{})
	base := s.URL() + "/_sim/"
	if status, reply := post(t, base+"accounts", `{"Mid":10086,"Uname":"演示账号"}`); status != 200 {
		t.Fatalf("add account: %d %s", status, reply)
	}
	if status, _ := post(t, base+"accounts", `{"Uname":"no mid"}`); status != http.StatusBadRequest {
		t.Errorf("an account without a mid: %d, want 400", status)
	}
	if status, _ := post(t, base+"qr/latest/scan", ""); status != http.StatusNotFound {
		t.Errorf("scan with no QR code: %d, want 404", status)
	}
	key := qrKey(t, s)
	if _, _, list := do(t, base+"qr", "", nil); strings.TrimSpace(string(list)) != key {
		t.Errorf("GET /_sim/qr = %q, want the pending key %s", list, key)
	}
	for _, action := range []string{"qr/latest/scan", "qr/" + key + "/confirm"} {
		if status, reply := post(t, base+action, ""); status != 200 {
			t.Fatalf("%s: %d %s", action, status, reply)
		}
	}
	_, hdr, body := do(t, s.URL()+PathQRPoll+"?qrcode_key="+key, "", nil)
	var poll struct{ Data struct{ Code int } }
	json.Unmarshal(body, &poll)
	if poll.Data.Code != 0 {
		t.Fatalf("poll after the control API confirmed = %s", body)
	}
	cookie := cookieHeader(hdr)
	if _, _, list := do(t, base+"accounts", "", nil); !strings.Contains(string(list), "10086 演示账号: 1 live session(s), 0 due") {
		t.Errorf("GET /_sim/accounts = %q", list)
	}
	post(t, base+"accounts/10086/refreshdue", "")
	_, _, body = do(t, s.URL()+PathCookieInfo, cookie, nil)
	if !strings.Contains(string(body), `"refresh":true`) {
		t.Errorf("cookie/info after refreshdue = %s", body)
	}
	post(t, base+"accounts/10086/logout", "")
	_, _, body = do(t, s.URL()+PathNav, cookie, nil)
	if code(t, body) != -101 {
		t.Errorf("nav after logout = %s, want -101", body)
	}
	post(t, base+"qr/"+qrKey(t, s)+"/expire", "")
	if len(s.PendingQRKeys()) != 0 {
		t.Error("expire left the code pending")
	}
	for _, bad := range []string{"accounts/1/logout", "accounts/10086/nope", "qr/" + key + "/nope", "qr/unknown/confirm?mid=10086"} {
		if status, _ := post(t, base+bad, ""); status != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", bad, status)
		}
	}
}
