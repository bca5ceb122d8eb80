package bilibili_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"roomrec/bilibili"
	"roomrec/bilibili/bilibilitest"
)

const (
	testMid   = 3493118494116797
	testUname = "录播姬测试号"
)

// newLoginSim starts the simulator with an account, a live room (5440) and
// the guest quality cap Bilibili has, and a client that counts
// OnLoggedOut calls.
func newLoginSim(t *testing.T) (*bilibilitest.Server, *bilibili.Client, *atomic.Int32) {
	t.Helper()
	sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 8, GuestMaxQn: 150})
	sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, ShortID: 1, UID: 9617619, Live: true})
	sim.AddAccount(bilibilitest.Account{Mid: testMid, Uname: testUname})
	var loggedOut atomic.Int32
	c := bilibili.NewClient(bilibili.Options{
		Endpoints:   bilibili.SingleEndpoint(sim.URL()),
		RefreshKey:  sim.RefreshPublicKey(),
		OnLoggedOut: func() { loggedOut.Add(1) },
	}, &http.Client{}, nil)
	return sim, c, &loggedOut
}

// qrLogin logs in by QR code as the test account, checking each state on
// the way, and returns the credentials the poll handed out.
func qrLogin(t *testing.T, sim *bilibilitest.Server, c *bilibili.Client) bilibili.Credentials {
	t.Helper()
	ctx := context.Background()
	qr, err := c.QRLogin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(qr.URL)
	if err != nil || u.Query().Get("qrcode_key") != qr.Key || len(qr.Key) != 32 {
		t.Fatalf("QR code %q with key %q: want a URL carrying the 32-character key", qr.URL, qr.Key)
	}
	if keys := sim.PendingQRKeys(); len(keys) != 1 || keys[0] != qr.Key {
		t.Fatalf("pending keys %q, want the one generated", keys)
	}
	poll := func(want bilibili.QRState) bilibili.QRPoll {
		t.Helper()
		p, err := c.PollQR(ctx, qr.Key)
		if err != nil {
			t.Fatal(err)
		}
		if p.State != want {
			t.Fatalf("poll state %v (%s), want %v", p.State, p.Message, want)
		}
		return p
	}
	poll(bilibili.QRWaiting)
	if err := sim.ScanQR(qr.Key); err != nil {
		t.Fatal(err)
	}
	poll(bilibili.QRScanned)
	if err := sim.ConfirmQR(qr.Key, testMid); err != nil {
		t.Fatal(err)
	}
	cred := poll(bilibili.QRConfirmed).Credentials
	poll(bilibili.QRExpired) // a key logs in once
	return cred
}

func TestQRLogin(t *testing.T) {
	sim, c, _ := newLoginSim(t)
	ctx := context.Background()
	if a, err := c.Nav(ctx); err != nil || a.IsLogin {
		t.Fatalf("Nav before login = %+v, %v; want logged out and no error", a, err)
	}
	cred := qrLogin(t, sim, c)
	for _, name := range []string{"SESSDATA", "bili_jct", "DedeUserID", "DedeUserID__ckMd5", "sid"} {
		if cred.Value(name) == "" {
			t.Errorf("credentials lack %s: %v", name, cred)
		}
	}
	if cred.UID() != testMid || cred.RefreshToken == "" || len(cred.CSRF()) != 32 {
		t.Errorf("uid %d, refresh token %t, bili_jct of %d characters; want %d, a token, 32", cred.UID(), cred.RefreshToken != "", len(cred.CSRF()), testMid)
	}
	if exp := time.Until(cred.Expires()); exp < 100*24*time.Hour {
		t.Errorf("SESSDATA expires in %s, want months", exp)
	}
	if !sim.SessionValid(cred.Value("SESSDATA")) {
		t.Error("the simulator does not know the SESSDATA the poll set")
	}

	// Not in use until set.
	if a, _ := c.Nav(ctx); a.IsLogin {
		t.Error("Nav logged in before SetLogin")
	}
	c.SetLogin(cred)
	a, err := c.Nav(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a != (bilibili.Account{IsLogin: true, Uname: testUname, Mid: testMid}) {
		t.Errorf("Nav = %+v, want logged in as %d %s", a, testMid, testUname)
	}
	if c.UID() != testMid {
		t.Errorf("UID = %d, want the login's %d", c.UID(), testMid)
	}
	// The WBI keys still come from nav, logged in or not.
	if _, err := c.DanmuInfo(ctx, 5440); err != nil {
		t.Errorf("DanmuInfo while logged in: %v", err)
	}

	c.Logout()
	if a, _ := c.Nav(ctx); a.IsLogin || c.UID() != 0 {
		t.Errorf("after Logout: Nav %+v, UID %d; want logged out", a, c.UID())
	}
}

func TestQRExpires(t *testing.T) {
	sim, c, _ := newLoginSim(t)
	ctx := context.Background()
	qr, err := c.QRLogin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.ExpireQR(qr.Key); err != nil {
		t.Fatal(err)
	}
	p, err := c.PollQR(ctx, qr.Key)
	if err != nil || p.State != bilibili.QRExpired || !p.Credentials.IsZero() {
		t.Errorf("poll after expiry = %+v, %v; want QRExpired without credentials", p, err)
	}
	if err := sim.ConfirmQR(qr.Key, testMid); err == nil {
		t.Error("an expired code could still be confirmed")
	}
	if p, _ := c.PollQR(ctx, "00000000000000000000000000000000"); p.State != bilibili.QRExpired {
		t.Errorf("an unknown key polls %v, want QRExpired", p.State)
	}
}

func TestPlayInfoQualityFollowsLogin(t *testing.T) {
	sim, c, loggedOut := newLoginSim(t)
	ctx := context.Background()
	stream := func() bilibili.Stream {
		t.Helper()
		info, err := c.PlayInfo(ctx, 5440, 10000)
		if err != nil {
			t.Fatal(err)
		}
		s, ok := info.FLV()
		if !ok {
			t.Fatalf("no FLV stream in %+v", info)
		}
		return s
	}
	if s := stream(); s.Qn != 150 || !strings.Contains(s.URLs[0], "_1500.flv") || !strings.Contains(s.URLs[0], "qn=150") {
		t.Errorf("as a guest: qn %d at %s, want 150 (_1500.flv, qn=150)", s.Qn, s.URLs[0])
	}
	cred, err := sim.IssueLogin(testMid)
	if err != nil {
		t.Fatal(err)
	}
	c.SetLogin(cred)
	s := stream()
	if s.Qn != 10000 || !strings.Contains(s.URLs[0], "_bluray.flv") || !strings.Contains(s.URLs[0], "qn=10000") {
		t.Errorf("logged in: qn %d at %s, want 10000 (_bluray.flv, qn=10000)", s.Qn, s.URLs[0])
	}
	// The stream URL works, and the CDN gets no cookie from the shared
	// HTTP client.
	resp, err := http.Get(s.URLs[0])
	if err != nil {
		t.Fatal(err)
	}
	io.CopyN(io.Discard, resp.Body, 1024)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("stream URL answered %s", resp.Status)
	}

	// Logged out elsewhere: play info serves the guest quality, not -101,
	// as Bilibili does, so it cannot tell the client the login is gone.
	sim.LogOut(testMid)
	if s := stream(); s.Qn != 150 {
		t.Errorf("after the session ended: qn %d, want 150", s.Qn)
	}
	if n := loggedOut.Load(); n != 0 {
		t.Errorf("OnLoggedOut called %d times from play info, which does not answer -101", n)
	}
}

func TestCookiesStayOnAPIHosts(t *testing.T) {
	sim, c, _ := newLoginSim(t)
	ctx := context.Background()
	c.SetLogin(qrLogin(t, sim, c))
	if _, err := c.DanmuInfo(ctx, 5440); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.WebsocketHeader().Get("Cookie"), "SESSDATA=") {
		t.Error("the danmaku websocket header lacks the login")
	}
	info, err := c.PlayInfo(ctx, 5440, 10000)
	if err != nil {
		t.Fatal(err)
	}
	// Every stream kind, fetched as the recorder fetches them: with an
	// HTTP client of its own.
	for _, st := range info.Streams {
		resp, err := http.Get(st.URLs[0])
		if err != nil {
			t.Fatal(err)
		}
		io.CopyN(io.Discard, resp.Body, 512)
		resp.Body.Close()
	}
	if got := sim.StreamRequestsWithCookie(); got != 0 {
		t.Errorf("%d stream requests carried a Cookie header, want none", got)
	}
}

func TestLoggedOutIsReportedOnce(t *testing.T) {
	sim, c, loggedOut := newLoginSim(t)
	ctx := context.Background()

	// Without a login, -101 is an error but nothing to report.
	if _, _, err := c.CookieInfo(ctx); !errors.Is(err, bilibili.ErrLoggedOut) {
		t.Fatalf("CookieInfo as a guest = %v, want ErrLoggedOut", err)
	}
	if n := loggedOut.Load(); n != 0 {
		t.Fatalf("OnLoggedOut called %d times without a login", n)
	}

	cred, _ := sim.IssueLogin(testMid)
	c.SetLogin(cred)
	if _, _, err := c.CookieInfo(ctx); err != nil {
		t.Fatalf("CookieInfo logged in: %v", err)
	}
	sim.LogOut(testMid)
	for range 2 {
		_, _, err := c.CookieInfo(ctx)
		var apiErr *bilibili.APIError
		if !errors.Is(err, bilibili.ErrLoggedOut) || !errors.As(err, &apiErr) || apiErr.Code != -101 {
			t.Errorf("CookieInfo after logout = %v, want ErrLoggedOut with code -101", err)
		}
	}
	// Nav's -101 is an answer, not an error; it is the same news.
	if a, err := c.Nav(ctx); err != nil || a.IsLogin {
		t.Errorf("Nav after logout = %+v, %v; want logged out, no error", a, err)
	}
	if n := loggedOut.Load(); n != 1 {
		t.Errorf("OnLoggedOut called %d times, want once", n)
	}

	// A new login is reported afresh, and nav notices too.
	cred, _ = sim.IssueLogin(testMid)
	c.SetLogin(cred)
	sim.ExpireSession(cred.Value("SESSDATA"))
	if a, err := c.Nav(ctx); err != nil || a.IsLogin {
		t.Errorf("Nav with an expired session = %+v, %v", a, err)
	}
	if n := loggedOut.Load(); n != 2 {
		t.Errorf("OnLoggedOut called %d times after the second login ended, want 2", n)
	}
}

func TestRefresh(t *testing.T) {
	sim, c, loggedOut := newLoginSim(t)
	ctx := context.Background()
	old := qrLogin(t, sim, c)
	c.SetLogin(old)

	due, ts, err := c.CookieInfo(ctx)
	if err != nil || due || time.Since(time.UnixMilli(ts)).Abs() > time.Minute {
		t.Fatalf("CookieInfo on a new login = %v, %d, %v; want no refresh and the time in ms", due, ts, err)
	}
	sim.MakeRefreshDue(testMid)
	if due, _, err := c.CookieInfo(ctx); err != nil || !due {
		t.Fatalf("CookieInfo after MakeRefreshDue = %v, %v; want refresh", due, err)
	}

	next, err := c.Refresh(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"SESSDATA", "bili_jct", "DedeUserID__ckMd5", "sid"} {
		if next.Value(name) == "" || next.Value(name) == old.Value(name) {
			t.Errorf("refreshed %s is empty or unchanged", name)
		}
	}
	if next.RefreshToken == "" || next.RefreshToken == old.RefreshToken || next.UID() != testMid {
		t.Errorf("refreshed uid %d, new refresh token %t; want %d and a new token", next.UID(), next.RefreshToken != old.RefreshToken, testMid)
	}
	if cur, ok := c.Login(); !ok || cur.Value("SESSDATA") != next.Value("SESSDATA") {
		t.Error("the client did not switch to the refreshed login")
	}
	if a, err := c.Nav(ctx); err != nil || !a.IsLogin || a.Mid != testMid {
		t.Errorf("Nav with the refreshed cookies = %+v, %v", a, err)
	}
	if due, _, err := c.CookieInfo(ctx); err != nil || due {
		t.Errorf("CookieInfo after refresh = %v, %v; want no refresh due", due, err)
	}

	// The confirm retired the old session.
	if sim.SessionValid(old.Value("SESSDATA")) {
		t.Error("the old session still works after confirm")
	}
	oldClient := bilibili.NewClient(bilibili.Options{Endpoints: bilibili.SingleEndpoint(sim.URL())}, &http.Client{}, nil)
	oldClient.SetLogin(old)
	if a, _ := oldClient.Nav(ctx); a.IsLogin {
		t.Error("nav still logged in with the old cookies")
	}
	if n := loggedOut.Load(); n != 0 {
		t.Errorf("OnLoggedOut called %d times during a refresh", n)
	}

	// And the refreshed one refreshes again.
	sim.MakeRefreshDue(testMid)
	if _, err := c.Refresh(ctx, next); err != nil {
		t.Errorf("second refresh: %v", err)
	}
}

func TestRefreshOfAnotherLoginLeavesTheClientAlone(t *testing.T) {
	sim, c, _ := newLoginSim(t)
	ctx := context.Background()
	a, _ := sim.IssueLogin(testMid)
	b, _ := sim.IssueLogin(testMid)
	c.SetLogin(a)
	if _, err := c.Refresh(ctx, b); err != nil {
		t.Fatal(err)
	}
	if cur, _ := c.Login(); cur.Value("SESSDATA") != a.Value("SESSDATA") {
		t.Error("refreshing credentials not in use replaced the client's login")
	}
}

func TestRefreshUnconfirmed(t *testing.T) {
	sim, c, _ := newLoginSim(t)
	ctx := context.Background()
	old, _ := sim.IssueLogin(testMid)
	c.SetLogin(old)
	sim.RiskControl(bilibilitest.PathConfirmRefresh, 1)
	next, err := c.Refresh(ctx, old)
	if !errors.Is(err, bilibili.ErrRefreshNotConfirmed) || !errors.Is(err, bilibili.ErrRiskControl) {
		t.Fatalf("Refresh with confirm refused = %v, want ErrRefreshNotConfirmed and the cause", err)
	}
	if next.IsZero() || next.RefreshToken == old.RefreshToken {
		t.Fatal("Refresh returned no new credentials with ErrRefreshNotConfirmed")
	}
	if !sim.SessionValid(old.Value("SESSDATA")) || !sim.SessionValid(next.Value("SESSDATA")) {
		t.Error("want both sessions valid until a confirm")
	}
	if cur, _ := c.Login(); cur.Value("SESSDATA") != next.Value("SESSDATA") {
		t.Error("the client did not switch to the new cookies, which work")
	}
	if err := c.ConfirmRefresh(ctx, next, old.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if sim.SessionValid(old.Value("SESSDATA")) {
		t.Error("the old session still works after ConfirmRefresh")
	}
}

// secrets lists the values no error may quote: every cookie value (in the
// encoded and decoded forms) and the refresh token.
func secrets(cred bilibili.Credentials) []string {
	out := []string{cred.RefreshToken}
	for _, ck := range cred.Cookies {
		if ck.Name == "DedeUserID" {
			continue // the mid, which errors may name
		}
		out = append(out, ck.Value)
		if dec, err := url.QueryUnescape(ck.Value); err == nil {
			out = append(out, dec)
		}
	}
	return out
}

func TestFailedRefreshKeepsTheLoginAndTheSecrets(t *testing.T) {
	tests := []struct {
		name  string
		setup func(sim *bilibilitest.Server, cred *bilibili.Credentials) *bilibili.Client
		check func(err error) bool
	}{
		{"path under another key (correspond 404)", func(sim *bilibilitest.Server, cred *bilibili.Credentials) *bilibili.Client {
			return bilibili.NewClient(bilibili.Options{Endpoints: bilibili.SingleEndpoint(sim.URL())}, &http.Client{}, nil)
		}, func(err error) bool {
			var e *bilibili.APIError
			return errors.As(err, &e) && e.Endpoint == "correspond" && e.HTTPStatus == http.StatusNotFound
		}},
		{"wrong refresh token (86095)", func(sim *bilibilitest.Server, cred *bilibili.Credentials) *bilibili.Client {
			cred.RefreshToken = strings.Repeat("0", 32)
			return nil
		}, func(err error) bool {
			var e *bilibili.APIError
			return errors.As(err, &e) && e.Endpoint == "cookie/refresh" && e.Code == 86095
		}},
		{"refresh refused (-352)", func(sim *bilibilitest.Server, cred *bilibili.Credentials) *bilibili.Client {
			sim.RiskControl(bilibilitest.PathCookieRefresh, 1)
			return nil
		}, func(err error) bool { return errors.Is(err, bilibili.ErrRiskControl) }},
		{"Bilibili unreachable", func(sim *bilibilitest.Server, cred *bilibili.Credentials) *bilibili.Client {
			return bilibili.NewClient(bilibili.Options{Endpoints: bilibili.SingleEndpoint("http://127.0.0.1:1")}, &http.Client{}, nil)
		}, func(err error) bool { return err != nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, c, _ := newLoginSim(t)
			cred, _ := sim.IssueLogin(testMid)
			orig := cred
			if other := tt.setup(sim, &cred); other != nil {
				c = other
			}
			c.SetLogin(cred)
			next, err := c.Refresh(context.Background(), cred)
			if err == nil || !tt.check(err) || !next.IsZero() {
				t.Fatalf("Refresh = %v, %v; want the failure and no credentials", next, err)
			}
			if cur, _ := c.Login(); cur.Value("SESSDATA") != cred.Value("SESSDATA") {
				t.Error("a failed refresh changed the client's login")
			}
			if !sim.SessionValid(cred.Value("SESSDATA")) {
				t.Error("a failed refresh ended the session")
			}
			for _, s := range append(secrets(orig), secrets(cred)...) {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q quotes a cookie or token", err)
				}
			}
		})
	}
}
