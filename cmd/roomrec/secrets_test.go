package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"roomrec/bilibili/bilibilitest"
	"roomrec/bot/telegram/telegramtest"
)

// A whole recorded run at debug level, with everything that drags secrets
// into errors: a cookie, a Telegram token, a dead CDN host (each attempt
// fails with a url.Error quoting the signed stream URL), a stream that
// breaks, and a Bot API call that times out at shutdown (its url.Error
// quotes the token in the path). The log must hold none of them.
func TestLogHoldsNoSecrets(t *testing.T) {
	const (
		sessdata = "sessdata-7Qz4%2C1893456000%2Cb4c1d*a2"
		biliJct  = "jct0f9e8d7c6b5a4e3d2"
		uid      = "3493117290"
		sid      = "sidXk9Lm"
	)
	cookie := "SESSDATA=" + sessdata + "; bili_jct=" + biliJct + "; DedeUserID=" + uid + "; sid=" + sid
	sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 4})
	room := sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, ShortID: 1, Anchor: "主播", Title: "今晚打游戏"})
	sim.SetPlayHosts("http://"+unusedAddr(t), sim.URL())
	tg := telegramtest.Start(t, testToken)
	tg.SetAdmin(groupID, adminID)
	m, out, dir := testMain(t, map[string]string{
		"BILIBILI_API_URL":      sim.URL(),
		"BILIBILI_COOKIE":       cookie,
		"TELEGRAM_BOT_TOKEN":    testToken,
		"TELEGRAM_API_ENDPOINT": tg.Endpoint(),
	})
	startMain(t, m, "serve")

	waitFor(t, 5*time.Second, "the command menu", func() bool { return strings.Contains(tg.Commands(), "record") })
	if r := ask(t, tg, adminID, "/record 5440"); !strings.Contains(r, "Recording") {
		t.Fatalf("/record = %q\n%s", r, out)
	}
	waitFor(t, 5*time.Second, "danmaku connection", func() bool { return sim.DanmakuConnections(5440) == 1 })
	room.GoLive()
	waitFor(t, 8*time.Second, "a file being written", func() bool {
		parts, _ := filepath.Glob(filepath.Join(dir, "recordings", "5440", "*.flv.part"))
		return len(parts) == 1
	})
	time.Sleep(500 * time.Millisecond)
	room.CutStream()
	waitFor(t, 5*time.Second, "the broken stream in the log", func() bool {
		return strings.Contains(out.String(), "stream interrupted")
	})
	waitFor(t, 5*time.Second, "the stream back", func() bool { return room.OpenStreams() == 1 })
	// Telegram stops answering polls: the confirmation at shutdown times
	// out with an error that quotes the Bot API URL.
	tg.Hang("getUpdates", 1000)
	if !stopWithin(t, m, 20*time.Second, "serve", out) {
		t.FailNow()
	}

	log := out.String()
	// Not vacuous: the log is a debug log of the whole run, and the
	// errors that would carry the secrets are in it, redacted.
	for _, want := range []string{
		"level=DEBUG",
		"stream interrupted; reconnecting",
		"stream host failed; trying the next",      // the dead CDN host's url.Error…
		".flv?…",                                   // …with its signed URL cut
		"could not confirm the last updates",       // the Bot API call that timed out…
		`/getUpdates\": context deadline exceeded`, // …quoting the Bot API URL
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	for _, secret := range []string{
		sessdata, biliJct, uid, sid, cookie, // the cookie's values
		testToken, strings.Split(testToken, ":")[1], // the token, and its secret half
		"sign=", "expires=", "trid=", // a stream URL's signed query
		"w_rid=", // a WBI-signed API call's
	} {
		if strings.Contains(log, secret) {
			t.Errorf("log holds %q", secret)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", log)
	}
}
