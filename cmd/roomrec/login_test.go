package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"image/png"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"roomrec/account"
	"roomrec/bilibili"
	"roomrec/bilibili/bilibilitest"
	"roomrec/bot/discord/discordtest"
	"roomrec/bot/telegram/telegramtest"
)

const (
	ownerID    = 77         // ROOMREC_OWNERS=telegram:77; their private chat with the bot has the same id
	strangerID = 88         // not an owner
	loginMid   = 3493117290 // the Bilibili account the owner logs in with
	loginUname = "录播小号"
)

// decodeQR reads the QR code in a PNG, as a phone camera would, with a
// reader that has nothing to do with the library that drew it.
func decodeQR(t *testing.T, b []byte) string {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("the QR code is not a PNG: %v", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("the PNG holds no readable QR code: %v", err)
	}
	return res.GetText()
}

// qrKey returns the qrcode_key a login QR URL carries.
func qrKey(t *testing.T, qrURL string) string {
	t.Helper()
	u, err := url.Parse(qrURL)
	if err != nil {
		t.Fatalf("QR code %q is not a URL: %v", qrURL, err)
	}
	return u.Query().Get("qrcode_key")
}

// askAt sends a command from user in a chat and returns the reply.
func askAt(t *testing.T, tg *telegramtest.Server, chat int64, chatType string, user int64, text string) string {
	t.Helper()
	before := len(tg.Calls())
	tg.Command(chat, chatType, user, text)
	return replyTo(t, tg, before).Text
}

// askOwner is a command from the owner in their private chat.
func askOwner(t *testing.T, tg *telegramtest.Server, text string) string {
	t.Helper()
	return askAt(t, tg, ownerID, "private", ownerID, text)
}

// sent returns what the bot sent with method to a chat (not as a reply)
// whose text holds want.
func sent(tg *telegramtest.Server, method string, chat int64, want string) []telegramtest.Call {
	var out []telegramtest.Call
	for _, c := range tg.Calls() {
		if c.Method == method && c.ChatID == chat && c.ReplyTo == 0 && strings.Contains(c.Text, want) {
			out = append(out, c)
		}
	}
	return out
}

// photosTo returns the photos sent to a chat: alerts (by URL) and QR codes
// (uploaded).
func photosTo(tg *telegramtest.Server, chat int64) []telegramtest.Call {
	return sent(tg, "sendPhoto", chat, "")
}

// waitEnded waits until the n-th alert to the group (from 1) is edited to
// say its broadcast ended: the next LIVE is a new broadcast.
func waitEnded(t *testing.T, tg *telegramtest.Server, n int) {
	t.Helper()
	a := photosTo(tg, groupID)
	if len(a) < n {
		t.Fatalf("%d alerts, want at least %d", len(a), n)
	}
	waitFor(t, 10*time.Second, "the alert edited at the broadcast's end", func() bool {
		for _, c := range tg.Calls() {
			if c.Method == "editMessageCaption" && c.MessageID == a[n-1].MessageID && strings.Contains(c.Text, "Ended after") {
				return true
			}
		}
		return false
	})
}

// storedLogin reads the login roomrec keeps in its database: cookie values
// by name, the refresh token, and whether it is marked expired.
func storedLogin(t *testing.T, dir string) (map[string]string, string, bool) {
	t.Helper()
	db, err := sql.Open("sqlite3", filepath.Join(dir, "roomrec.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var cookies, token string
	var expired bool
	err = db.QueryRow(`SELECT cookies, refresh_token, expired FROM bilibili_login WHERE id = 1`).Scan(&cookies, &token, &expired)
	if err == sql.ErrNoRows {
		return nil, "", false
	}
	if err != nil {
		t.Fatalf("read the stored login: %v", err)
	}
	var list []bilibili.Cookie
	if err := json.Unmarshal([]byte(cookies), &list); err != nil {
		t.Fatalf("stored cookies: %v", err)
	}
	out := map[string]string{}
	for _, c := range list {
		out[c.Name] = c.Value
	}
	return out, token, expired
}

// streamQn returns the qn /metrics says Bilibili serves a room, or 0.
func streamQn(t *testing.T, base string, room int64) int {
	t.Helper()
	for _, line := range strings.Split(httpGet(t, base+"/metrics"), "\n") {
		if !strings.HasPrefix(line, "roomrec_stream_qn{") || !strings.Contains(line, `room="`+strconv.FormatInt(room, 10)+`"`) {
			continue
		}
		qn, _ := strconv.Atoi(line[strings.LastIndexByte(line, ' ')+1:])
		return qn
	}
	return 0
}

// withSimLogin points roomrec's cookie refresh at the simulator's key
// (Bilibili's own is compiled in) and, if fast, polls QR logins and checks
// for a due refresh every few hundred milliseconds instead of every 2 s
// and 12 h.
func withSimLogin(sim *bilibilitest.Server, fast bool) func(*Main) {
	return func(m *Main) {
		m.Bilibili = func(o *bilibili.Options) { o.RefreshKey = sim.RefreshPublicKey() }
		if fast {
			m.Account = func(o *account.Options) {
				o.PollEvery = 200 * time.Millisecond
				o.CheckEvery = 300 * time.Millisecond
			}
		}
	}
}

// The whole life of a login, through the real Telegram adapter: the owner
// logs in by QR code from their private chat, the next broadcast is
// recorded at 原画 with the cookie on API requests only, a refresh
// Bilibili asks for is carried out and its cookie used, a restart keeps
// the login, and a -101 tells the owner once and marks the login expired.
// No cookie value or refresh token reaches the log of any of the runs.
func TestLoginFromTelegramEndToEnd(t *testing.T) {
	sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 4, GuestMaxQn: 150})
	sim.AddAccount(bilibilitest.Account{Mid: loginMid, Uname: loginUname})
	room := sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, Anchor: "主播", Title: "今晚打游戏"})
	tg := telegramtest.Start(t, testToken)
	tg.SetAdmin(groupID, adminID)
	dir := t.TempDir()
	env := map[string]string{
		"ROOMREC_DATA_DIR":      dir,
		"BILIBILI_API_URL":      sim.URL(),
		"TELEGRAM_BOT_TOKEN":    testToken,
		"TELEGRAM_API_ENDPOINT": tg.Endpoint(),
		"ROOMREC_OWNERS":        "telegram:" + strconv.Itoa(ownerID),
	}
	run := runServe(t, env, publicLinks, withSimLogin(sim, true))
	stop, firstLog, base := run.stop, run.out, run.url()
	waitFor(t, 5*time.Second, "the command menu", func() bool { return strings.Contains(tg.Commands(), "login") })
	if r := ask(t, tg, adminID, "/record 5440"); !strings.Contains(r, "Recording 主播") {
		t.Fatalf("/record = %q", r)
	}

	// /login: a QR code as a photo, which decodes to the URL Bilibili
	// handed out for the one pending code.
	if r := askOwner(t, tg, "/login"); !strings.Contains(r, "login QR code") {
		t.Fatalf("owner's /login = %q", r)
	}
	var qr telegramtest.Call
	waitFor(t, 5*time.Second, "the QR code", func() bool {
		p := photosTo(tg, ownerID)
		if len(p) > 0 {
			qr = p[0]
		}
		return len(p) > 0
	})
	if len(qr.PhotoBytes) == 0 || !strings.HasSuffix(qr.PhotoName, ".png") || !strings.Contains(qr.Text, "Scan this with the Bilibili app") {
		t.Fatalf("QR photo = %d bytes named %q, caption %q; want an uploaded PNG with how to scan it", len(qr.PhotoBytes), qr.PhotoName, qr.Text)
	}
	qrURL := decodeQR(t, qr.PhotoBytes)
	key := qrKey(t, qrURL)
	if pending := sim.PendingQRKeys(); len(pending) != 1 || key != pending[0] ||
		!strings.HasPrefix(qrURL, "https://account.bilibili.com/h5/account-pc/login/scan-web?") {
		t.Fatalf("QR code says %q (key %q); the simulator's pending keys are %q", qrURL, key, pending)
	}

	// Scanned, then confirmed on the phone: the owner hears each.
	if err := sim.ScanQR(key); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "word that the code was scanned", func() bool { return len(sent(tg, "sendMessage", ownerID, "Scanned")) == 1 })
	if r := ask(t, tg, memberID, "/status"); !strings.Contains(r, "Bilibili: not logged in") {
		t.Errorf("/status before the confirmation = %q", r)
	}
	if err := sim.ConfirmQR(key, loginMid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "word of the login", func() bool { return len(sent(tg, "sendMessage", ownerID, "Logged in to Bilibili as "+loginUname)) == 1 })
	if r := ask(t, tg, memberID, "/status"); !strings.Contains(r, "Bilibili: logged in as "+loginUname) {
		t.Errorf("/status in the group = %q", r)
	}
	if r := askOwner(t, tg, "/status"); !strings.Contains(r, "Bilibili: logged in as "+loginUname) {
		t.Errorf("/status in private = %q", r)
	}
	first, firstToken, _ := storedLogin(t, dir)
	if first["SESSDATA"] == "" || first["bili_jct"] == "" || firstToken == "" || !sim.SessionValid(first["SESSDATA"]) {
		t.Fatalf("stored login = %d cookies, refresh token %t; want a valid session", len(first), firstToken != "")
	}

	// The next broadcast: 原画, which play info serves only to a request
	// with the session's SESSDATA; the stream requests carry no cookie.
	waitFor(t, 5*time.Second, "danmaku connection", func() bool { return sim.DanmakuConnections(5440) == 1 })
	room.GoLive()
	waitFor(t, 5*time.Second, "the alert", func() bool { return len(photosTo(tg, groupID)) == 1 })
	if a := photosTo(tg, groupID)[0]; !strings.Contains(a.Text, "recording in 原画") || strings.Contains(a.Text, "/login") {
		t.Errorf("alert = %q, want 原画 and no word of logging in", a.Text)
	}
	waitFor(t, 5*time.Second, "the stream's qn in /metrics", func() bool { return streamQn(t, base, 5440) != 0 })
	if qn := streamQn(t, base, 5440); qn != 10000 {
		t.Errorf("roomrec_stream_qn = %d, want 10000", qn)
	}
	waitFor(t, 5*time.Second, "stream requests", func() bool { return room.StreamRequests() > 0 })
	if n := sim.StreamRequestsWithCookie(); n != 0 {
		t.Errorf("%d of %d stream requests carried a cookie, want none", n, room.StreamRequests())
	}
	room.EndLive()
	waitEnded(t, tg, 1)

	// Bilibili asks for a refresh: the next check carries it out, the old
	// session is retired by the confirmation, and the new cookie is what
	// play info sees.
	sim.MakeRefreshDue(loginMid)
	var second map[string]string
	var secondToken string
	waitFor(t, 10*time.Second, "the refreshed login stored", func() bool {
		second, secondToken, _ = storedLogin(t, dir)
		return second["SESSDATA"] != first["SESSDATA"]
	})
	if second["bili_jct"] == first["bili_jct"] || secondToken == firstToken || secondToken == "" {
		t.Errorf("the refresh stored a new SESSDATA but kept bili_jct or the refresh token")
	}
	waitFor(t, 5*time.Second, "the old session retired", func() bool { return !sim.SessionValid(first["SESSDATA"]) })
	if !sim.SessionValid(second["SESSDATA"]) {
		t.Fatal("the refreshed session is not valid")
	}
	room.GoLive()
	waitFor(t, 5*time.Second, "the second alert", func() bool { return len(photosTo(tg, groupID)) == 2 })
	if a := photosTo(tg, groupID)[1]; !strings.Contains(a.Text, "recording in 原画") {
		t.Errorf("alert after the refresh = %q, want 原画", a.Text)
	}
	waitFor(t, 5*time.Second, "the stream's qn in /metrics", func() bool { return streamQn(t, base, 5440) != 0 })
	if qn := streamQn(t, base, 5440); qn != 10000 {
		t.Errorf("roomrec_stream_qn after the refresh = %d, want 10000", qn)
	}
	if r := ask(t, tg, memberID, "/status"); !strings.Contains(r, "Bilibili: logged in as "+loginUname) {
		t.Errorf("/status after the refresh = %q", r)
	}
	room.EndLive()
	waitEnded(t, tg, 2)
	stop()

	// A restart keeps the login: no new QR code, and 原画 again. Its
	// checks are the real ones (at start, then in 12 h).
	generated := sim.Requests(bilibilitest.PathQRGenerate)
	run = runServe(t, env, publicLinks, withSimLogin(sim, false))
	stop, secondLog, base := run.stop, run.out, run.url()
	if r := ask(t, tg, memberID, "/status"); !strings.Contains(r, "Bilibili: logged in as "+loginUname) {
		t.Errorf("/status after a restart = %q", r)
	}
	waitFor(t, 5*time.Second, "danmaku connection", func() bool { return sim.DanmakuConnections(5440) == 1 })
	room.GoLive()
	waitFor(t, 5*time.Second, "the third alert", func() bool { return len(photosTo(tg, groupID)) == 3 })
	if a := photosTo(tg, groupID)[2]; !strings.Contains(a.Text, "recording in 原画") {
		t.Errorf("alert after a restart = %q, want 原画", a.Text)
	}
	waitFor(t, 5*time.Second, "the stream's qn in /metrics", func() bool { return streamQn(t, base, 5440) != 0 })
	if qn := streamQn(t, base, 5440); qn != 10000 {
		t.Errorf("roomrec_stream_qn after a restart = %d, want 10000", qn)
	}
	if n := sim.Requests(bilibilitest.PathQRGenerate); n != generated || len(photosTo(tg, ownerID)) != 1 {
		t.Errorf("QR codes asked for after the restart: %d, sent %d; want none new", n-generated, len(photosTo(tg, ownerID))-1)
	}

	// The session ends elsewhere. The next nav (the WBI keys, fetched
	// again after a -352 on danmaku info) answers -101: the owner hears
	// of it once, and recording goes on without the login.
	sim.LogOut(loginMid)
	expiries := func() int { return len(sent(tg, "sendMessage", ownerID, "Bilibili login of "+loginUname+" expired")) }
	navs := sim.Requests(bilibilitest.PathNav)
	sim.RiskControl(bilibilitest.PathDanmuInfo, 1)
	sim.DropDanmakuConnections()
	waitFor(t, 10*time.Second, "word of the expired login", func() bool { return expiries() > 0 })
	if sim.Requests(bilibilitest.PathNav) == navs {
		t.Error("the login expired without a nav call")
	}
	// Another nav's -101 is no news.
	navs = sim.Requests(bilibilitest.PathNav)
	sim.RiskControl(bilibilitest.PathDanmuInfo, 1)
	sim.DropDanmakuConnections()
	waitFor(t, 10*time.Second, "another nav call", func() bool { return sim.Requests(bilibilitest.PathNav) > navs })
	waitFor(t, 5*time.Second, "danmaku connection", func() bool { return sim.DanmakuConnections(5440) == 1 })
	time.Sleep(500 * time.Millisecond)
	if n := expiries(); n != 1 {
		t.Errorf("%d messages about the expired login, want 1", n)
	}
	if others := len(sent(tg, "sendMessage", groupID, "expired")); others != 0 {
		t.Errorf("the group heard of the expired login %d times; only owners should", others)
	}
	if r := ask(t, tg, memberID, "/status"); !strings.Contains(r, "Bilibili: the login of "+loginUname+" expired") {
		t.Errorf("/status after -101 = %q", r)
	}
	if _, _, expired := storedLogin(t, dir); !expired {
		t.Error("the stored login is not marked expired")
	}
	room.EndLive()
	waitEnded(t, tg, 3)
	room.GoLive()
	waitFor(t, 5*time.Second, "the fourth alert", func() bool { return len(photosTo(tg, groupID)) == 4 })
	if a := photosTo(tg, groupID)[3]; !strings.Contains(a.Text, "recording in 高清") || !strings.Contains(a.Text, "/login") {
		t.Errorf("alert after the login expired = %q, want 高清 and why", a.Text)
	}
	stop()

	// A restart remembers that it expired, and does not say so again.
	thirdLog := runServe(t, env, publicLinks, withSimLogin(sim, false)).out
	if r := ask(t, tg, memberID, "/status"); !strings.Contains(r, "Bilibili: the login of "+loginUname+" expired") {
		t.Errorf("/status after a restart with an expired login = %q", r)
	}
	if n := expiries(); n != 1 {
		t.Errorf("%d messages about the expired login after a restart, want still 1", n)
	}

	log := firstLog.String() + secondLog.String() + thirdLog.String()
	for _, want := range []string{
		"level=DEBUG",
		"logged in to Bilibili",              // the QR login, and the login loaded at the restart
		"Bilibili login refreshed",           // the refresh
		"Bilibili ended the login's session", // the -101
		"uname=" + loginUname,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	var secrets []string
	for _, login := range []map[string]string{first, second} {
		for _, name := range []string{"SESSDATA", "bili_jct", "DedeUserID__ckMd5", "sid", "DedeUserID"} {
			v := login[name]
			if v == "" {
				t.Errorf("the stored login has no %s", name)
				continue
			}
			secrets = append(secrets, v)
			if plain, err := url.QueryUnescape(v); err == nil && plain != v {
				secrets = append(secrets, plain)
			}
		}
	}
	secrets = append(secrets, firstToken, secondToken)
	for _, s := range secrets {
		if strings.Contains(log, s) {
			t.Errorf("log holds a cookie value or refresh token: %q", s)
		}
	}
}

// /login and /logout are refused in a group, even to an owner, and in a
// private chat to anyone who is not an owner; no QR code is asked for or
// sent.
func TestLoginRefusedOutsideAnOwnersPrivateChat(t *testing.T) {
	sim := bilibilitest.Start(t, bilibilitest.Config{GuestMaxQn: 150})
	sim.AddAccount(bilibilitest.Account{Mid: loginMid, Uname: loginUname})
	tg := telegramtest.Start(t, testToken)
	tg.SetAdmin(groupID, ownerID)
	startServeWith(t, sim, tg, t.TempDir(), map[string]string{"ROOMREC_OWNERS": "telegram:" + strconv.Itoa(ownerID)})
	waitFor(t, 5*time.Second, "the command menu", func() bool { return strings.Contains(tg.Commands(), "login") })

	for _, tc := range []struct {
		name, chatType string
		chat, user     int64
		text, want     string
	}{
		{"owner in a group", "supergroup", groupID, ownerID, "/login", "/login works only in a private chat with me"},
		{"owner in a group, logout", "supergroup", groupID, ownerID, "/logout", "/logout works only in a private chat with me"},
		{"stranger in private", "private", strangerID, strangerID, "/login", "Only the people who run this roomrec (ROOMREC_OWNERS) may /login"},
		{"stranger in private, logout", "private", strangerID, strangerID, "/logout", "Only the people who run this roomrec (ROOMREC_OWNERS) may /logout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := askAt(t, tg, tc.chat, tc.chatType, tc.user, tc.text); !strings.Contains(r, tc.want) {
				t.Errorf("%s = %q, want %q", tc.text, r, tc.want)
			}
		})
	}
	time.Sleep(500 * time.Millisecond) // a QR code would go out through the outbox
	for _, c := range tg.Calls() {
		if c.Method == "sendPhoto" {
			t.Errorf("a photo went out: %+v", c)
		}
	}
	if n := sim.Requests(bilibilitest.PathQRGenerate); n != 0 {
		t.Errorf("%d QR codes asked of Bilibili, want none", n)
	}
	if r := ask(t, tg, memberID, "/status"); !strings.Contains(r, "Bilibili: not logged in") {
		t.Errorf("/status = %q", r)
	}
}

// Without a login, Bilibili serves 高清, and the chat recording the room
// hears once per broadcast why and what to do, though LIVE comes twice;
// /status says it too.
func TestWithoutLoginTheChatHearsWhy(t *testing.T) {
	sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 4, GuestMaxQn: 150})
	room := sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, Anchor: "主播", Title: "今晚打游戏"})
	tg := telegramtest.Start(t, testToken)
	tg.SetAdmin(groupID, adminID)
	base := runServe(t, map[string]string{
		"BILIBILI_API_URL":      sim.URL(),
		"TELEGRAM_BOT_TOKEN":    testToken,
		"TELEGRAM_API_ENDPOINT": tg.Endpoint(),
		"ROOMREC_OWNERS":        "telegram:" + strconv.Itoa(ownerID),
	}).url()
	if r := ask(t, tg, adminID, "/record 5440"); !strings.Contains(r, "Recording 主播") {
		t.Fatalf("/record = %q", r)
	}
	if r := ask(t, tg, memberID, "/status"); !strings.Contains(r, "Bilibili: not logged in; recordings are limited to 480p (an owner can /login)") {
		t.Errorf("/status = %q", r)
	}
	waitFor(t, 5*time.Second, "danmaku connection", func() bool { return sim.DanmakuConnections(5440) == 1 })
	room.GoLive() // LIVE twice, as Bilibili sends it
	waitFor(t, 5*time.Second, "the alert", func() bool { return len(photosTo(tg, groupID)) == 1 })
	time.Sleep(time.Second) // the second LIVE and a poll pass
	why := "Bilibili serves 原画 only to a logged-in account, so this is recorded at 高清. An owner of this roomrec can /login"
	var told int
	for _, c := range tg.Calls() {
		if c.ChatID == groupID && strings.Contains(c.Text, why) {
			told++
		}
	}
	if a := photosTo(tg, groupID); len(a) != 1 || !strings.Contains(a[0].Text, "recording in 高清") || told != 1 {
		t.Errorf("alerts = %+v; the chat was told why %d times; want one alert at 高清 that says why", a, told)
	}
	if qn := streamQn(t, base, 5440); qn != 150 {
		t.Errorf("roomrec_stream_qn = %d, want 150", qn)
	}
	// The next broadcast is told again: once per broadcast.
	room.EndLive()
	waitEnded(t, tg, 1)
	room.GoLive()
	waitFor(t, 5*time.Second, "the second alert", func() bool { return len(photosTo(tg, groupID)) == 2 })
	if a := photosTo(tg, groupID)[1]; !strings.Contains(a.Text, why) {
		t.Errorf("second alert = %q, want it to say why again", a.Text)
	}
}

// Discord: the owner's /login in a DM gets the QR code as an attachment
// and the login goes through; in a guild channel it is refused, only to
// the caller, with nothing attached.
func TestLoginFromDiscord(t *testing.T) {
	const owner = "555"
	sim := bilibilitest.Start(t, bilibilitest.Config{GuestMaxQn: 150})
	sim.AddAccount(bilibilitest.Account{Mid: loginMid, Uname: loginUname})
	dc := discordtest.Start(t)
	runServe(t, map[string]string{
		"BILIBILI_API_URL":  sim.URL(),
		"DISCORD_BOT_TOKEN": "discord-token",
		"DISCORD_GUILD_ID":  guild,
		"DISCORD_API_URL":   dc.URL(),
		"ROOMREC_OWNERS":    "discord:" + owner,
	}, withSimLogin(sim, true))
	select {
	case <-dc.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("the bot never connected to the gateway")
	}
	answer := func(id string) string {
		t.Helper()
		var got string
		waitFor(t, 5*time.Second, "the answer to interaction "+id, func() bool {
			c := callsMatching(dc, "POST", "/interactions/"+id+"/")
			if len(c) > 0 {
				got = jsonOf(c[0].Body)
			}
			return len(c) > 0
		})
		return got
	}
	attachments := func() []discordtest.Call {
		var out []discordtest.Call
		for _, c := range dc.Calls() {
			if len(c.Files) > 0 {
				out = append(out, c)
			}
		}
		return out
	}

	// In the guild: refused, ephemeral, and no QR code anywhere.
	dc.Dispatch(discordtest.Interaction{ID: "1", GuildID: guild, ChannelID: channel, UserID: owner, Permissions: 32, Name: "login"})
	if r := answer("1"); !strings.Contains(r, "/login works only in a private chat with me") || !strings.Contains(r, `"flags":64`) {
		t.Errorf("/login in a guild = %s, want an ephemeral refusal", r)
	}
	time.Sleep(300 * time.Millisecond)
	if a := attachments(); len(a) != 0 || sim.Requests(bilibilitest.PathQRGenerate) != 0 {
		t.Fatalf("after a refused /login: %d uploads, %d QR codes asked for", len(a), sim.Requests(bilibilitest.PathQRGenerate))
	}

	// In a DM: the QR code, attached to a message in that DM.
	dc.Dispatch(discordtest.Interaction{ID: "2", ChannelID: "dm-1", UserID: owner, Name: "login"})
	if r := answer("2"); !strings.Contains(r, "login QR code") {
		t.Errorf("/login in a DM = %s", r)
	}
	waitFor(t, 5*time.Second, "the QR code", func() bool { return len(attachments()) == 1 })
	up := attachments()[0]
	if up.Method != "POST" || up.Path != "/channels/dm-1/messages" || len(up.Files) != 1 || up.Files[0].ContentType != "image/png" {
		t.Fatalf("upload = %s %s with %+v, want one PNG in the DM", up.Method, up.Path, up.Files)
	}
	if body := jsonOf(up.Body); !strings.Contains(body, "attachment://"+up.Files[0].Name) {
		t.Errorf("message = %s, want the QR code shown in its embed", body)
	}
	key := qrKey(t, decodeQR(t, up.Files[0].Data))
	if pending := sim.PendingQRKeys(); len(pending) != 1 || key != pending[0] {
		t.Fatalf("QR code's key %q; the simulator's pending keys are %q", key, pending)
	}
	if err := sim.ConfirmQR(key, loginMid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "word of the login in the DM", func() bool {
		for _, c := range callsMatching(dc, "POST", "/channels/dm-1/messages") {
			if strings.Contains(jsonOf(c.Body), "Logged in to Bilibili as "+loginUname) {
				return true
			}
		}
		return false
	})
	dc.Dispatch(discordtest.Interaction{ID: "3", GuildID: guild, ChannelID: channel, UserID: "7", Name: "status"})
	if r := answer("3"); !strings.Contains(r, "Bilibili: logged in as "+loginUname) {
		t.Errorf("/status = %s", r)
	}
}
