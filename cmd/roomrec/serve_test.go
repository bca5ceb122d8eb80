package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"roomrec/bilibili/bilibilitest"
	"roomrec/bot/telegram/telegramtest"
)

const (
	testToken = "123456:TEST-token"
	groupID   = -1001234
	adminID   = 10
	memberID  = 11
)

// startServe runs `roomrec serve` in-process against the simulator and a
// fake Telegram, with its data in dir, and returns a function that stops it
// as SIGTERM does.
func startServe(t testing.TB, sim *bilibilitest.Server, tg *telegramtest.Server, dir string) func() {
	t.Helper()
	return startServeWith(t, sim, tg, dir, nil)
}

// startServeWith is startServe with more configuration in env.
func startServeWith(t testing.TB, sim *bilibilitest.Server, tg *telegramtest.Server, dir string, env map[string]string) func() {
	t.Helper()
	return startServeMain(t, sim, tg, dir, env, nil).stop
}

// startServeMain is startServeWith with adjust applied to the Main before
// it runs, returning the running serve. Its download links are public, at
// the port the HTTP server was given.
func startServeMain(t testing.TB, sim *bilibilitest.Server, tg *telegramtest.Server, dir string, env map[string]string, adjust func(*Main)) *served {
	t.Helper()
	full := map[string]string{
		"ROOMREC_DATA_DIR":      dir,
		"BILIBILI_API_URL":      sim.URL(),
		"TELEGRAM_BOT_TOKEN":    testToken,
		"TELEGRAM_API_ENDPOINT": tg.Endpoint(),
	}
	for k, v := range env {
		full[k] = v
	}
	return runServe(t, full, publicLinks, adjust)
}

// publicLinks makes the download links of m public, at the address its
// HTTP server is bound to, as a ROOMREC_PUBLIC_URL naming it would.
func publicLinks(m *Main) {
	m.PublicURL = func(addr string) string { return "http://" + addr }
}

// served is a `roomrec serve` running in-process.
type served struct {
	m    *Main
	out  *syncBuffer // its log
	stop func()      // stops it as SIGTERM does, and checks it stopped in time
}

// url is the base URL of its HTTP server.
func (s *served) url() string { return "http://" + s.m.HTTPAddr() }

// runServe runs `roomrec serve` in-process with env on top of testMain's
// (whose HTTP server takes a free port), after each adjust that is not nil
// has changed the Main. It is stopped when the test ends, if not before.
func runServe(t testing.TB, env map[string]string, adjust ...func(*Main)) *served {
	t.Helper()
	m, out, _ := testMain(t, env)
	for _, a := range adjust {
		if a != nil {
			a(m)
		}
	}
	s := &served{m: m, out: out}
	if err := m.Run(context.Background(), []string{"serve"}); err != nil {
		t.Fatalf("serve returned %v\n%s", err, out)
	}
	stopped := false
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		stopWithin(t, m, 15*time.Second, "serve", out)
	}
	t.Cleanup(s.stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("roomrec's output:\n%s", out)
		}
	})
	return s
}

// stopWithin closes m, running the subcommand named what, as main does at
// the first signal, and reports whether Close returned nil within limit;
// if not, the test fails with out, m's output.
func stopWithin(t testing.TB, m *Main, limit time.Duration, what string, out fmt.Stringer) bool {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- m.Close(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s returned %v\n%s", what, err, out)
		}
		return err == nil
	case <-time.After(limit):
		t.Errorf("%s did not stop within %s of the signal\n%s", what, limit, out)
		return false
	}
}

// unusedAddr returns a loopback address that nothing listens on right now:
// for a server that is down, or for a process of its own, which must be
// told its port before it starts.
func unusedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// replyTo waits for the bot's reply to the latest command and returns it.
func replyTo(t *testing.T, tg *telegramtest.Server, before int) telegramtest.Call {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		calls := tg.Calls()
		for _, c := range calls[min(before, len(calls)):] {
			if c.Method == "sendMessage" && c.ReplyTo != 0 {
				return c
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no reply; calls: %+v", tg.Calls()[before:])
	return telegramtest.Call{}
}

func ask(t *testing.T, tg *telegramtest.Server, user int64, text string) string {
	t.Helper()
	before := len(tg.Calls())
	tg.Command(groupID, "supergroup", user, text)
	return replyTo(t, tg, before).Text
}

func alerts(tg *telegramtest.Server) []telegramtest.Call {
	var out []telegramtest.Call
	for _, c := range tg.Calls() {
		if c.Method == "sendPhoto" {
			out = append(out, c)
		}
	}
	return out
}

func TestServeTelegramEndToEnd(t *testing.T) {
	sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 4})
	room := sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, ShortID: 1, Anchor: "主播", Title: "今晚打游戏"})
	tg := telegramtest.Start(t, testToken)
	tg.SetAdmin(groupID, adminID)
	dir := t.TempDir()
	stop := startServe(t, sim, tg, dir)
	waitFor(t, 5*time.Second, "the command menu", func() bool { return strings.Contains(tg.Commands(), "record") })

	if r := ask(t, tg, memberID, "/record 5440"); !strings.Contains(r, "Only admins") {
		t.Errorf("member /record = %q", r)
	}
	if r := ask(t, tg, adminID, "/record abc"); !strings.Contains(r, "not a room number") {
		t.Errorf("/record abc = %q", r)
	}
	if r := ask(t, tg, adminID, "/record@"+telegramtest.BotUsername+" https://live.bilibili.com/1"); !strings.Contains(r, "Recording 主播 — 今晚打游戏") {
		t.Fatalf("admin /record = %q", r)
	}
	// A command for another bot in the group is not ours.
	before := len(tg.Calls())
	tg.Command(groupID, "supergroup", adminID, "/list@some_other_bot")
	time.Sleep(300 * time.Millisecond)
	if n := len(tg.Calls()); n != before {
		t.Errorf("answered a command addressed to another bot: %+v", tg.Calls()[before:])
	}

	waitFor(t, 5*time.Second, "danmaku connection", func() bool { return sim.DanmakuConnections(5440) == 1 })
	room.GoLive()
	waitFor(t, 5*time.Second, "the alert", func() bool { return len(alerts(tg)) == 1 })
	time.Sleep(time.Second) // the second LIVE and a poll pass
	a := alerts(tg)
	if len(a) != 1 || a[0].ChatID != groupID || !strings.Contains(a[0].Text, "今晚打游戏") ||
		!strings.Contains(a[0].Markup, "https://live.bilibili.com/5440") || a[0].Photo == "" {
		t.Fatalf("alerts = %+v, want one photo alert with title and room link", a)
	}
	room.EndLive()
	waitFor(t, 10*time.Second, "the alert edited", func() bool {
		for _, c := range tg.Calls() {
			if c.Method == "editMessageCaption" && c.MessageID == a[0].MessageID && strings.Contains(c.Text, "Ended after") {
				return true
			}
		}
		return false
	})
	if r := ask(t, tg, memberID, "/archive"); !strings.Contains(r, "1 recordings") || !strings.Contains(r, "#1 ") {
		t.Errorf("/archive = %q", r)
	}
	// Anyone gets a link; it downloads the file, with Range.
	link := ask(t, tg, memberID, "/archive link 1")
	url := link[strings.Index(link, "http://"):]
	url = url[:strings.IndexByte(url, '\n')]
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Range", "bytes=0-2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("download %q: %v", url, err)
	}
	head, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(head) != "FLV" {
		t.Errorf("download = %d %q, want 206 FLV", resp.StatusCode, head)
	}
	// The same server answers health checks and Prometheus scrapes.
	base := url[:strings.Index(url, "/dl/")]
	// Every reply, alert and edit went through the outbox and is counted.
	sent := fmt.Sprintf(`roomrec_messages_total{platform="telegram",result="sent"} %d`, len(tg.Calls()))
	var metrics string
	waitFor(t, 5*time.Second, "the messages counted", func() bool {
		metrics = httpGet(t, base+"/metrics")
		return strings.Contains(metrics, sent)
	})
	for _, want := range []string{
		`roomrec_rooms{state="watched"} 1`,
		`roomrec_files_written_total 1`,
		`roomrec_bilibili_api_errors_total{kind="risk_control"} 0`,
		`roomrec_disk_free_bytes `,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, metrics)
		}
	}
	if health := httpGet(t, base+"/healthz"); !strings.Contains(health, `"database":"ok"`) || !strings.Contains(health, "bilibili_last_success") || !strings.Contains(health, `"bots":{"telegram":true}`) {
		t.Errorf("/healthz = %s", health)
	}
	if r := ask(t, tg, memberID, "/archive link 99"); !strings.Contains(r, "no recording 99") {
		t.Errorf("/archive link 99 = %q", r)
	}

	// A restart in the middle of a broadcast: recording resumes, the chat
	// is not alerted again.
	room.GoLive()
	waitFor(t, 5*time.Second, "the second broadcast's alert", func() bool { return len(alerts(tg)) == 2 })
	stop()
	parts, _ := filepath.Glob(filepath.Join(dir, "recordings", "5440", "*.part"))
	if len(parts) != 0 {
		t.Errorf("files left unfinished at shutdown: %q", parts)
	}
	startServe(t, sim, tg, dir)
	waitFor(t, 10*time.Second, "recording to resume after the restart", func() bool {
		parts, _ := filepath.Glob(filepath.Join(dir, "recordings", "5440", "*.flv.part"))
		return len(parts) == 1
	})
	time.Sleep(time.Second)
	if n := len(alerts(tg)); n != 2 {
		t.Errorf("%d alerts after a restart mid-broadcast, want still 2", n)
	}
	if r := ask(t, tg, memberID, "/archive"); !strings.Contains(r, "recordings") || strings.Contains(r, "1 recordings") {
		t.Errorf("/archive after the restart = %q, want the files of both broadcasts", r)
	}

	if r := ask(t, tg, adminID, "/stop 1"); !strings.Contains(r, "Stopped following") {
		t.Errorf("/stop = %q", r)
	}
	room.EndLive()
	room.GoLive()
	time.Sleep(1500 * time.Millisecond)
	if n := len(alerts(tg)); n != 2 {
		t.Errorf("%d alerts after /stop, want still 2", n)
	}
}

// An .mp4 in the archive comes down its /archive link whole, as
// video/mp4, and plays: here H.264 from a room Bilibili offers as HLS
// only, put in fragmented MP4 by ROOMREC_CONTAINER=mp4.
func TestArchiveLinkToAnMP4(t *testing.T) {
	sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 4})
	room := sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, Anchor: "主播", Title: "今晚打游戏"})
	room.SetOffer(bilibilitest.OfferHLSOnly)
	tg := telegramtest.Start(t, testToken)
	tg.SetAdmin(groupID, adminID)
	dir := t.TempDir()
	roomDir := filepath.Join(dir, "recordings", "5440")
	startServeWith(t, sim, tg, dir, map[string]string{"ROOMREC_CONTAINER": "mp4"})
	if r := ask(t, tg, adminID, "/record 5440"); !strings.Contains(r, "Recording 主播") {
		t.Fatalf("/record = %q", r)
	}
	waitFor(t, 5*time.Second, "danmaku connection", func() bool { return sim.DanmakuConnections(5440) == 1 })
	room.GoLive()
	waitFor(t, 5*time.Second, "an .mp4 being written", func() bool {
		parts, _ := filepath.Glob(filepath.Join(roomDir, "*.mp4.part"))
		return len(parts) == 1
	})
	time.Sleep(2 * time.Second)
	room.EndLive()
	var file string
	waitFor(t, 10*time.Second, "the .mp4 finished", func() bool {
		files, _ := filepath.Glob(filepath.Join(roomDir, "*.mp4"))
		parts, _ := filepath.Glob(filepath.Join(roomDir, "*.part"))
		if len(files) != 1 || len(parts) != 0 {
			return false
		}
		file = files[0]
		return true
	})
	rel, _ := filepath.Rel(filepath.Join(dir, "recordings"), file)
	waitFor(t, 5*time.Second, "the .mp4 archived as complete", func() bool {
		status, _ := archivedRecording(t, dir, filepath.ToSlash(rel))
		return status == "complete"
	})

	link := ask(t, tg, memberID, "/archive link 1")
	i := strings.Index(link, "http://")
	if i < 0 {
		t.Fatalf("/archive link 1 = %q, want a link", link)
	}
	url, _, _ := strings.Cut(link[i:], "\n")
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("download %q: %v", url, err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("download %q: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("download = %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "video/mp4" {
		t.Errorf("Content-Type %q, want video/mp4", ct)
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasSuffix(cd, ".mp4") {
		t.Errorf("Content-Disposition %q, want the file's .mp4 name", cd)
	}
	onDisk, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, onDisk) {
		t.Fatalf("downloaded %d bytes that differ from the %d on disk", len(got), len(onDisk))
	}
	downloaded := filepath.Join(t.TempDir(), "downloaded.mp4")
	if err := os.WriteFile(downloaded, got, 0o644); err != nil {
		t.Fatal(err)
	}
	if p, ok := probeClean(t, downloaded); ok {
		if c := p.sortedCodecs(); c != "aac,h264" {
			t.Errorf("downloaded file holds %s, want h264 and aac", c)
		}
		if p.Duration < 4*time.Second {
			t.Errorf("downloaded file has %s of media, want most of the 2 s broadcast at 4x", p.Duration)
		}
	}
}

// An alert that could not be delivered before roomrec stopped (Telegram
// was down) is delivered after the restart, once.
func TestAlertSurvivesAnOutageAcrossARestart(t *testing.T) {
	sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 4})
	room := sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, Anchor: "主播", Title: "今晚打游戏"})
	tg := telegramtest.Start(t, testToken)
	tg.SetAdmin(groupID, adminID)
	dir := t.TempDir()
	stop := startServe(t, sim, tg, dir)
	if r := ask(t, tg, adminID, "/record 5440"); !strings.Contains(r, "Recording 主播") {
		t.Fatalf("/record = %q", r)
	}
	waitFor(t, 5*time.Second, "danmaku connection", func() bool { return sim.DanmakuConnections(5440) == 1 })

	tg.Fail("sendPhoto", 1000, 502, "Bad Gateway")
	room.GoLive()
	waitFor(t, 5*time.Second, "an alert attempt during the outage", func() bool { return tg.Failing("sendPhoto") < 1000 })
	stop()
	if n := len(alerts(tg)); n != 0 {
		t.Fatalf("%d alerts delivered during the outage", n)
	}

	tg.Recover()
	startServe(t, sim, tg, dir)
	waitFor(t, 10*time.Second, "the alert after the restart", func() bool { return len(alerts(tg)) == 1 })
	time.Sleep(time.Second) // LIVE pushes and a poll pass
	if a := alerts(tg); len(a) != 1 || !strings.Contains(a[0].Text, "今晚打游戏") {
		t.Errorf("alerts = %+v, want exactly one, delivered late", a)
	}
}

// A restart while Bilibili refuses every request still resumes every
// subscribed room: the tasks back off and record once Bilibili answers.
func TestResumeUnderRiskControl(t *testing.T) {
	sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 4})
	room := sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, Anchor: "主播", Title: "今晚打游戏"})
	sim.AddRoom(bilibilitest.RoomConfig{RoomID: 6666, Anchor: "另一个", Title: "聊天"})
	tg := telegramtest.Start(t, testToken)
	tg.SetAdmin(groupID, adminID)
	dir := t.TempDir()
	stop := startServe(t, sim, tg, dir)
	for cmd, want := range map[string]string{"/record 5440": "Recording 主播", "/watch 6666": "Watching 另一个"} {
		if r := ask(t, tg, adminID, cmd); !strings.Contains(r, want) {
			t.Fatalf("%s = %q", cmd, r)
		}
	}
	stop()

	sim.RiskControl("", 6)
	sim.HTTP412(bilibilitest.PathRoomInit, 6)
	room.GoLive()
	startServe(t, sim, tg, dir)
	list := ask(t, tg, memberID, "/list")
	if strings.Contains(list, "starting") || !strings.Contains(list, "room 5440") || !strings.Contains(list, "room 6666") {
		t.Errorf("/list after a restart under risk control = %q, want both rooms with a task", list)
	}
	waitFor(t, 20*time.Second, "the recording once Bilibili answers again", func() bool {
		files, _ := filepath.Glob(filepath.Join(dir, "recordings", "5440", "*.flv.part"))
		return len(files) == 1
	})
}

// A reply Telegram answers with 429 waits for retry_after and arrives: it
// goes through the outbox like an alert.
func TestReplyWaitsOutA429(t *testing.T) {
	sim := bilibilitest.Start(t, bilibilitest.Config{})
	tg := telegramtest.Start(t, testToken)
	startServe(t, sim, tg, t.TempDir())
	waitFor(t, 5*time.Second, "the command menu", func() bool { return strings.Contains(tg.Commands(), "record") })
	tg.TooManyRequests("sendMessage", 1)
	if r := ask(t, tg, memberID, "/help"); !strings.Contains(r, "/record") {
		t.Errorf("/help after a 429 = %q", r)
	}
}

func TestServeNeedsABotToken(t *testing.T) {
	m, _, _ := testMain(t, nil)
	err := m.Run(context.Background(), []string{"serve"})
	if err == nil || !strings.Contains(err.Error(), "TELEGRAM_BOT_TOKEN") {
		t.Errorf("serve without a token = %v, want it to name the variable to set", err)
	}
	// And with no subcommand, serve is the default.
	if err := m.Run(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "no bot token") {
		t.Errorf("roomrec with no arguments = %v", err)
	}
}

// BenchmarkTelegramCommandReply measures a command's round trip on
// loopback: the update delivered to the bot's long poll, the router and
// database, and the reply sent through the Bot API. Target: under 50 ms.
func BenchmarkTelegramCommandReply(b *testing.B) {
	sim := bilibilitest.Start(b, bilibilitest.Config{})
	sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, ShortID: 1})
	tg := telegramtest.Start(b, testToken)
	startServe(b, sim, tg, b.TempDir())
	waitFor(b, 5*time.Second, "the command menu", func() bool { return strings.Contains(tg.Commands(), "record") })
	chat := int64(-2000)
	for _, cmd := range []string{"/list", "/record 5440"} {
		b.Run(cmd[1:], func(b *testing.B) {
			for range b.N {
				// Replies keep to Telegram's limits (one a second per chat,
				// thirty a second in all): each command comes from a chat
				// of its own, paced under the global limit, so what is
				// timed is the work, not the limiter.
				b.StopTimer()
				chat--
				tg.SetAdmin(chat, adminID)
				time.Sleep(40 * time.Millisecond)
				before := len(tg.Calls())
				b.StartTimer()
				tg.Command(chat, "supergroup", adminID, cmd)
				for len(tg.Calls()) == before {
					time.Sleep(100 * time.Microsecond)
				}
			}
		})
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s = %s", url, resp.Status)
	}
	return string(body)
}
