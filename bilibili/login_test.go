package bilibili

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCorrespondPath(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	const ts = int64(1684466082562)
	a, err := correspondPath(&key.PublicKey, ts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := correspondPath(&key.PublicKey, ts)
	if len(a) != 256 || strings.ToLower(a) != a {
		t.Errorf("path %q: %d characters, want 256 lowercase hex digits for a 1024-bit key", a, len(a))
	}
	if a == b {
		t.Error("two paths for one timestamp are equal; OAEP should randomize them")
	}
	for _, p := range []string{a, b} {
		ct, err := hex.DecodeString(p)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := rsa.DecryptOAEP(sha256.New(), nil, key, ct, nil)
		if err != nil {
			t.Fatalf("path does not decrypt with OAEP SHA-256: %v", err)
		}
		if want := "refresh_" + strconv.FormatInt(ts, 10); string(msg) != want {
			t.Errorf("path decrypts to %q, want %q", msg, want)
		}
	}
}

func TestBilibiliRefreshKey(t *testing.T) {
	key := bilibiliRefreshKey()
	if key.N.BitLen() != 1024 || key.E != 65537 {
		t.Errorf("key of %d bits, e %d; want the published 1024-bit key with e 65537", key.N.BitLen(), key.E)
	}
	// The modulus of the JWK form in the same docs.
	if got := fmt.Sprintf("%x", key.N.Bytes()[:4]); got != "cb81dd8e" {
		t.Errorf("modulus starts %s, want cb81dd8e", got)
	}
	p, err := correspondPath(key, time.Now().UnixMilli())
	if err != nil || len(p) != 256 {
		t.Errorf("path under Bilibili's key: %d characters, %v", len(p), err)
	}
	c := NewClient(Options{}, nil, nil)
	if c.refreshKey != key {
		t.Error("a client without RefreshKey does not use Bilibili's")
	}
}

func TestRefreshCSRFFromPage(t *testing.T) {
	tests := []struct{ name, page, want string }{
		{"the website's page", `<!DOCTYPE html><html lang="zh-Hans"><head><meta name="spm_prefix" content="333.1193"></head><title>Correspond</title><body>
  <div id="1-name">b0cc8411ded2f9db2cff2edb3123acac</div>
  <div id="token-iframe-app"></div></body></html>`, "b0cc8411ded2f9db2cff2edb3123acac"},
		{"other attributes and spaces", `<div class="x" id="1-name" data-a="b">  abc  </div>`, "abc"},
		{"single quotes", `<div id='1-name'>abc</div>`, "abc"},
		{"no such element", `<html><body>404</body></html>`, ""},
		{"cut short", `<div id="1-name">abc`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := refreshCSRFFromPage(tt.page); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEndpoints(t *testing.T) {
	want := Endpoints{Live: "http://sim", Main: "http://sim", Passport: "http://sim", WWW: "http://sim"}
	if got := SingleEndpoint("http://sim/"); got != want {
		t.Errorf("SingleEndpoint = %+v, want every host at the base", got)
	}
	c := NewClient(Options{Endpoints: Endpoints{Live: "http://live", Main: "http://main"}}, nil, nil)
	if c.ep.Passport != "https://passport.bilibili.com" || c.ep.WWW != "https://www.bilibili.com" || c.ep.Live != "http://live" {
		t.Errorf("endpoints %+v, want the missing hosts filled with Bilibili's", c.ep)
	}
}

var testCred = Credentials{
	Cookies: []Cookie{
		{Name: "SESSDATA", Value: "5e6f7a8b%2C1767225600%2C1a2b3%2A11secretsess"},
		{Name: "bili_jct", Value: "0123456789abcdef0123456789abcdef"},
		{Name: "DedeUserID", Value: "777"},
		{Name: "DedeUserID__ckMd5", Value: "fedcba9876543210"},
		{Name: "sid", Value: "sid12345"},
	},
	RefreshToken: "refreshtokenrefreshtokenrefresh1",
}

func containsSecret(s string, cred Credentials) bool {
	if strings.Contains(s, cred.RefreshToken) {
		return true
	}
	for _, ck := range cred.Cookies {
		if ck.Name != "DedeUserID" && strings.Contains(s, ck.Value) {
			return true
		}
	}
	return false
}

func TestCredentialsPrintNoSecrets(t *testing.T) {
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("login", "cred", testCred, "cookie", testCred.Cookies[0])
	for _, s := range []string{
		fmt.Sprint(testCred), fmt.Sprintf("%+v", testCred), fmt.Sprintf("%#v", testCred),
		fmt.Sprintf("%v", testCred.Cookies), fmt.Sprintf("%#v", testCred.Cookies[0]),
		fmt.Sprintf("%+v", QRPoll{State: QRConfirmed, Credentials: testCred}), buf.String(),
	} {
		if containsSecret(s, testCred) {
			t.Errorf("%s quotes a secret", s)
		}
	}
	if !strings.Contains(fmt.Sprint(testCred), "777") {
		t.Errorf("%v does not name the uid", testCred)
	}
}

// recorder is an API that answers every path with {"code":0} (or the
// given answers) and records each request.
type recorder struct {
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	method, path, query string
	header              http.Header
	body                string
}

func newRecorder(t *testing.T, answers map[string]func(w http.ResponseWriter)) (*httptest.Server, *recorder) {
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), string(body)})
		rec.mu.Unlock()
		if a, ok := answers[r.URL.Path]; ok {
			a(w)
			return
		}
		w.Write([]byte(`{"code":0,"message":"0","ttl":1,"data":{}}`))
	}))
	t.Cleanup(srv.Close)
	return srv, rec
}

func (r *recorder) last(path string) recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.reqs) - 1; i >= 0; i-- {
		if r.reqs[i].path == path {
			return r.reqs[i]
		}
	}
	return recorded{}
}

func TestWhichCookiesGoWhere(t *testing.T) {
	srv, rec := newRecorder(t, map[string]func(w http.ResponseWriter){
		"/x/frontend/finger/spi": func(w http.ResponseWriter) { w.Write([]byte(`{"code":0,"data":{"b_3":"B3infoc"}}`)) },
	})
	c := NewClient(Options{Endpoints: SingleEndpoint(srv.URL), Cookie: "SESSDATA=fromenv; bili_jct=envjct"}, srv.Client(), nil)
	ctx := context.Background()
	if _, err := c.Buvid3(ctx); err != nil {
		t.Fatal(err)
	}
	c.ResolveRoom(ctx, 1)
	if got := rec.last("/room/v1/Room/room_init").header.Get("Cookie"); got != "SESSDATA=fromenv; bili_jct=envjct; buvid3=B3infoc" {
		t.Errorf("without a login: Cookie %q, want the configured cookie and buvid3", got)
	}
	c.CookieInfo(ctx)
	if got := rec.last(cookieInfoPath).query; got != "csrf=envjct" {
		t.Errorf("cookie/info query %q, want the configured bili_jct as csrf", got)
	}

	c.SetLogin(testCred)
	c.ResolveRoom(ctx, 1)
	want := testCred.header() + "; buvid3=B3infoc"
	if got := rec.last("/room/v1/Room/room_init").header.Get("Cookie"); got != want {
		t.Errorf("logged in: Cookie %q, want %q", got, want)
	}
	if got := c.WebsocketHeader().Get("Cookie"); got != want {
		t.Errorf("websocket Cookie %q, want %q", got, want)
	}
	// A QR login starts a new session: it carries no session cookie.
	c.QRLogin(ctx)
	c.PollQR(ctx, "k")
	for _, path := range []string{"/x/passport-login/web/qrcode/generate", "/x/passport-login/web/qrcode/poll"} {
		if got := rec.last(path).header.Get("Cookie"); got != "buvid3=B3infoc" {
			t.Errorf("%s: Cookie %q, want buvid3 alone", path, got)
		}
	}
	c.Logout()
	c.ResolveRoom(ctx, 1)
	if got := rec.last("/room/v1/Room/room_init").header.Get("Cookie"); !strings.HasPrefix(got, "SESSDATA=fromenv") {
		t.Errorf("after Logout: Cookie %q, want the configured cookie again", got)
	}
}

func TestPostSendsTheBrowserHeadersAndAForm(t *testing.T) {
	srv, rec := newRecorder(t, nil)
	c := NewClient(Options{Endpoints: SingleEndpoint(srv.URL)}, srv.Client(), nil)
	if err := c.ConfirmRefresh(context.Background(), testCred, "oldtoken"); err != nil {
		t.Fatal(err)
	}
	r := rec.last(confirmRefreshPath)
	if r.method != http.MethodPost {
		t.Errorf("method %s, want POST", r.method)
	}
	for name, want := range map[string]string{
		"User-Agent":   UserAgent,
		"Referer":      "https://live.bilibili.com/",
		"Origin":       "https://live.bilibili.com",
		"Content-Type": "application/x-www-form-urlencoded",
		"Cookie":       testCred.header(),
	} {
		if got := r.header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	form, _ := url.ParseQuery(r.body)
	if form.Get("csrf") != testCred.CSRF() || form.Get("refresh_token") != "oldtoken" {
		t.Errorf("form %v, want the new bili_jct as csrf and the old refresh token", form)
	}
}

func TestErrorsQuoteNoSecret(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens: every request fails in the transport
	c := NewClient(Options{Endpoints: SingleEndpoint(base)}, nil, nil)
	c.SetLogin(testCred)
	ctx := context.Background()
	_, _, err := c.CookieInfo(ctx)
	errs := []error{err}
	_, err = c.PollQR(ctx, "qrkeyqrkeyqrkeyqrkeyqrkeyqrkey12")
	errs = append(errs, err)
	errs = append(errs, c.ConfirmRefresh(ctx, testCred, testCred.RefreshToken))
	_, err = c.Refresh(ctx, testCred)
	errs = append(errs, err)
	for _, err := range errs {
		if err == nil {
			t.Fatal("a request to a closed port succeeded")
		}
		if containsSecret(err.Error(), testCred) || strings.Contains(err.Error(), "qrkeyqrkey") {
			t.Errorf("error %q quotes a secret", err)
		}
	}
}

func TestSetCookieNeverReachesASharedJar(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/x/passport-login/web/qrcode/poll" {
			http.SetCookie(w, &http.Cookie{Name: "SESSDATA", Value: "jarred", Path: "/"})
			w.Write([]byte(`{"code":0,"data":{"code":0,"refresh_token":"t"}}`))
			return
		}
		w.Write([]byte(r.Header.Get("Cookie")))
	}))
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	shared := &http.Client{Jar: jar}
	c := NewClient(Options{Endpoints: SingleEndpoint(srv.URL)}, shared, nil)
	p, err := c.PollQR(context.Background(), "k")
	if err != nil || p.Credentials.Value("SESSDATA") != "jarred" {
		t.Fatalf("poll = %+v, %v; want the cookie from Set-Cookie", p, err)
	}
	// The recorder's downloads share the HTTP client.
	resp, err := shared.Get(srv.URL + "/live-bvc/x.flv")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(got) != 0 {
		t.Errorf("a request through the shared client sent Cookie %q", got)
	}
}

func TestStaleLoggedOutIsNotReported(t *testing.T) {
	calls := 0
	c := NewClient(Options{OnLoggedOut: func() { calls++ }}, nil, nil)
	c.SetLogin(testCred)
	_, gen := c.cookiesFor(sendCurrent, nil)
	c.SetLogin(testCred) // a new login before the old one's answer came
	c.noteLoggedOut(gen)
	c.noteLoggedOut(0) // a request without the login
	if calls != 0 {
		t.Errorf("OnLoggedOut called %d times for answers to an older login", calls)
	}
	_, gen = c.cookiesFor(sendCurrent, nil)
	c.noteLoggedOut(gen)
	c.noteLoggedOut(gen)
	if calls != 1 {
		t.Errorf("OnLoggedOut called %d times, want once", calls)
	}
	c.Logout()
	c.noteLoggedOut(gen)
	if calls != 1 {
		t.Errorf("OnLoggedOut called after Logout")
	}
}

func TestWithSetCookies(t *testing.T) {
	h := http.Header{}
	h.Add("Set-Cookie", "SESSDATA=new%2C1%2Cx%2A1; Path=/; Domain=bilibili.com; Expires=Wed, 15 Nov 2023 07:34:10 GMT; HttpOnly; Secure")
	h.Add("Set-Cookie", "bili_jct=newjct; Path=/; Domain=bilibili.com; Expires=Wed, 15 Nov 2023 07:34:10 GMT")
	h.Add("Set-Cookie", "extra=1; Path=/")
	got := testCred.withSetCookies(h)
	if got.Value("SESSDATA") != "new%2C1%2Cx%2A1" || got.CSRF() != "newjct" || got.Value("sid") != "sid12345" || got.Value("extra") != "1" {
		t.Errorf("merged %v: SESSDATA %t, bili_jct %t, sid kept %t, extra %t", got,
			got.Value("SESSDATA") == "new%2C1%2Cx%2A1", got.CSRF() == "newjct", got.Value("sid") == "sid12345", got.Value("extra") == "1")
	}
	if want := time.Date(2023, 11, 15, 7, 34, 10, 0, time.UTC); !got.Expires().Equal(want) {
		t.Errorf("Expires = %s, want %s", got.Expires(), want)
	}
	if testCred.CSRF() != "0123456789abcdef0123456789abcdef" {
		t.Error("withSetCookies changed its receiver's cookies")
	}
}
