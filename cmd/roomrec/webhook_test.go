package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"roomrec/bilibili/bilibilitest"
	"roomrec/bot/telegram/telegramtest"
	"roomrec/webhook"
)

// brecEvent is a webhook body as a BililiveRecorder webhook v2 receiver
// reads it.
type brecEvent struct {
	EventType      string
	EventTimestamp string
	EventId        string
	EventData      struct {
		SessionId, RelativePath, FileOpenTime, FileCloseTime string
		RoomId, ShortId, FileSize                            int64
		Duration                                             float64
		Name, Title, AreaNameParent, AreaNameChild           string
		Recording, Streaming, DanmakuConnected               bool
	}
}

// hookHit is one POST a receiver got.
type hookHit struct {
	brecEvent
	Body      []byte
	Signature string
	At        time.Time
	Confirmed bool
}

// hookReceiver is a webhook endpoint on loopback that can be down
// (answering 503), up, or hanging.
type hookReceiver struct {
	srv  *http.Server
	addr string
	mu   sync.Mutex
	hits []hookHit
	code int           // what it answers; 200 by default
	hang chan struct{} // while set, requests wait on it
}

func newHookReceiver(t testing.TB) *hookReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &hookReceiver{addr: ln.Addr().String(), code: http.StatusOK}
	r.srv = &http.Server{Handler: r}
	go r.srv.Serve(ln)
	t.Cleanup(func() {
		r.mu.Lock()
		if r.hang != nil {
			close(r.hang)
			r.hang = nil
		}
		r.mu.Unlock()
		r.srv.Close()
	})
	return r
}

func (r *hookReceiver) URL() string { return "http://" + r.addr + "/brec?token=t0k3n" }

func (r *hookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	h := hookHit{Body: body, Signature: req.Header.Get(webhook.SignatureHeader), At: time.Now()}
	json.Unmarshal(body, &h.brecEvent)
	r.mu.Lock()
	hang := r.hang
	r.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-req.Context().Done():
		}
	}
	r.mu.Lock()
	code := r.code
	h.Confirmed = code/100 == 2 && req.Context().Err() == nil
	r.hits = append(r.hits, h)
	r.mu.Unlock()
	w.WriteHeader(code)
}

func (r *hookReceiver) setCode(code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.code = code
}

func (r *hookReceiver) all() []hookHit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.hits)
}

// confirmed returns the events answered with a 2xx, in order.
func (r *hookReceiver) confirmed() []hookHit {
	var out []hookHit
	for _, h := range r.all() {
		if h.Confirmed {
			out = append(out, h)
		}
	}
	return out
}

func (r *hookReceiver) count(typ string) int {
	n := 0
	for _, h := range r.confirmed() {
		if h.EventType == typ {
			n++
		}
	}
	return n
}

var (
	guidRE      = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	timestampRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?[+-]\d\d:\d\d$`)
)

// One broadcast through the real recorder, with a reconnect and splits,
// reaches a receiver as BililiveRecorder's sequence of events with their
// fields, signed; a second URL that hangs holds up neither it, the
// recording nor the alert.
func TestWebhooksEndToEnd(t *testing.T) {
	sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 8})
	room := sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, ShortID: 1, Anchor: "主播", Title: "今晚打游戏 & <PK>",
		AreaName: "单机游戏", ParentAreaName: "游戏"})
	tg := telegramtest.Start(t, testToken)
	tg.SetAdmin(groupID, adminID)
	good, hung := newHookReceiver(t), newHookReceiver(t)
	hung.hang = make(chan struct{})
	const secret = "hook-secret-9f8e7d"
	dir := t.TempDir()
	base := startServeMain(t, sim, tg, dir, map[string]string{
		"ROOMREC_WEBHOOK_URLS":   hung.URL() + ", " + good.URL(),
		"ROOMREC_WEBHOOK_SECRET": secret,
		"ROOMREC_SPLIT_EVERY":    "10s",
	}, nil).url()
	if r := ask(t, tg, adminID, "/record 5440"); !strings.Contains(r, "Recording 主播") {
		t.Fatalf("/record = %q", r)
	}
	waitFor(t, 5*time.Second, "danmaku connection", func() bool { return sim.DanmakuConnections(5440) == 1 })
	room.GoLive()
	waitFor(t, 5*time.Second, "the alert, with a webhook hanging", func() bool { return len(alerts(tg)) == 1 })
	waitFor(t, 5*time.Second, "the first FileOpening", func() bool { return good.count(webhook.FileOpening) == 1 })
	time.Sleep(300 * time.Millisecond)
	room.CutStream() // a reconnect: the same file goes on
	waitFor(t, 10*time.Second, "a split", func() bool { return good.count(webhook.FileOpening) == 2 })
	room.EndLive()
	waitFor(t, 15*time.Second, "StreamEnded", func() bool { return good.count(webhook.StreamEnded) == 1 })

	got := good.confirmed()
	var typesGot []string
	for _, h := range got {
		typesGot = append(typesGot, h.EventType)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "recordings", "5440", "*.flv"))
	want := []string{webhook.StreamStarted, webhook.SessionStarted}
	for range files {
		want = append(want, webhook.FileOpening, webhook.FileClosed)
	}
	want = append(want, webhook.SessionEnded, webhook.StreamEnded)
	if len(files) < 2 || !slices.Equal(typesGot, want) {
		t.Fatalf("events %v for %d files, want %v", typesGot, len(files), want)
	}
	session := got[1].EventData.SessionId
	if !guidRE.MatchString(session) {
		t.Errorf("SessionId %q is not a GUID", session)
	}
	ids := map[string]bool{}
	var last time.Time
	opened := map[string]string{} // path → FileOpenTime
	for i, h := range got {
		d := h.EventData
		if !guidRE.MatchString(h.EventId) || ids[h.EventId] {
			t.Errorf("%s: EventId %q is not a fresh GUID", h.EventType, h.EventId)
		}
		ids[h.EventId] = true
		ts, err := time.Parse(webhook.TimeLayout, h.EventTimestamp)
		if !timestampRE.MatchString(h.EventTimestamp) || err != nil || ts.Before(last) {
			t.Errorf("%s: EventTimestamp %q (%v), after %s", h.EventType, h.EventTimestamp, err, last)
		}
		last = ts
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(h.Body)
		if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); h.Signature != want {
			t.Errorf("%s: signature %q, want %q", h.EventType, h.Signature, want)
		}
		if d.RoomId != 5440 || d.ShortId != 1 || d.Name != "主播" || d.Title != "今晚打游戏 & <PK>" || d.AreaNameParent != "游戏" || d.AreaNameChild != "单机游戏" {
			t.Errorf("%s: room fields %+v", h.EventType, d)
		}
		inSession := h.EventType != webhook.StreamStarted && h.EventType != webhook.StreamEnded
		if inSession && d.SessionId != session || !inSession && d.SessionId != "" {
			t.Errorf("%s: SessionId %q, want %q", h.EventType, d.SessionId, session)
		}
		wantRecording := inSession && h.EventType != webhook.SessionEnded
		wantStreaming := h.EventType != webhook.StreamEnded && i < len(got)-2
		if d.Recording != wantRecording || d.Streaming != wantStreaming {
			t.Errorf("%s: Recording %v, Streaming %v; want %v, %v", h.EventType, d.Recording, d.Streaming, wantRecording, wantStreaming)
		}
		if h.EventType == webhook.StreamStarted && !d.DanmakuConnected {
			t.Errorf("StreamStarted says the danmaku websocket is down")
		}
		switch h.EventType {
		case webhook.FileOpening:
			if _, err := time.Parse(webhook.TimeLayout, d.FileOpenTime); err != nil || !strings.HasPrefix(d.RelativePath, "5440/") {
				t.Errorf("FileOpening %+v", d)
			}
			opened[d.RelativePath] = d.FileOpenTime
		case webhook.FileClosed:
			fi, err := os.Stat(filepath.Join(dir, "recordings", filepath.FromSlash(d.RelativePath)))
			if err != nil {
				t.Errorf("FileClosed names %s: %v", d.RelativePath, err)
				continue
			}
			if d.FileSize != fi.Size() || d.Duration <= 0 || d.Duration > 12 || opened[d.RelativePath] != d.FileOpenTime {
				t.Errorf("FileClosed %+v; the file has %d bytes, opened at %s", d, fi.Size(), opened[d.RelativePath])
			}
			if ot, _ := time.Parse(webhook.TimeLayout, d.FileOpenTime); true {
				if ct, _ := time.Parse(webhook.TimeLayout, d.FileCloseTime); !ct.After(ot) {
					t.Errorf("FileClosed at %s, opened at %s", d.FileCloseTime, d.FileOpenTime)
				}
			}
		}
	}
	if strings.Contains(string(got[0].Body), `\u0026`) {
		t.Errorf("the title is HTML-escaped: %s", got[0].Body)
	}
	// The hung URL is still on its first event; /metrics says so.
	if n := len(hung.confirmed()); n != 0 {
		t.Errorf("the hung URL confirmed %d events", n)
	}
	metrics := httpGet(t, base+"/metrics")
	goodName, hungName := webhook.Redact(good.URL()), webhook.Redact(hung.URL())
	for _, w := range []string{
		fmt.Sprintf(`roomrec_webhook_deliveries_total{result="delivered",url=%q} %d`, goodName, len(got)),
		fmt.Sprintf(`roomrec_webhook_outbox_depth{url=%q} 0`, goodName),
		fmt.Sprintf(`roomrec_webhook_outbox_depth{url=%q} %d`, hungName, len(got)),
		fmt.Sprintf(`roomrec_webhook_deliveries_total{result="given_up",url=%q} 0`, hungName),
	} {
		if !strings.Contains(metrics, w) {
			t.Errorf("/metrics lacks %s", w)
		}
	}
	if strings.Contains(metrics, "t0k3n") {
		t.Error("/metrics shows a URL's query")
	}
}

// With the receiver down across a restart, every event arrives after the
// restart, each confirmed once, with the EventId and body it was queued
// with.
func TestWebhooksSurviveARestart(t *testing.T) {
	sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 4})
	room := sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, Anchor: "主播", Title: "今晚打游戏"})
	tg := telegramtest.Start(t, testToken)
	tg.SetAdmin(groupID, adminID)
	rcv := newHookReceiver(t)
	rcv.setCode(http.StatusServiceUnavailable)
	dir := t.TempDir()
	env := map[string]string{"ROOMREC_WEBHOOK_URLS": rcv.URL()}
	before := startServeMain(t, sim, tg, dir, env, nil)
	if r := ask(t, tg, adminID, "/record 5440"); !strings.Contains(r, "Recording 主播") {
		t.Fatalf("/record = %q", r)
	}
	waitFor(t, 5*time.Second, "danmaku connection", func() bool { return sim.DanmakuConnections(5440) == 1 })
	room.GoLive()
	waitFor(t, 5*time.Second, "a file", func() bool {
		parts, _ := filepath.Glob(filepath.Join(dir, "recordings", "5440", "*.flv.part"))
		return len(parts) == 1
	})
	time.Sleep(time.Second)
	room.EndLive()
	depth := fmt.Sprintf(`roomrec_webhook_outbox_depth{url=%q} 6`, webhook.Redact(rcv.URL()))
	waitFor(t, 10*time.Second, "the broadcast's six events queued", func() bool {
		return strings.Contains(httpGet(t, before.url()+"/metrics"), depth)
	})
	before.stop()
	if n := len(rcv.confirmed()); n != 0 || len(rcv.all()) == 0 {
		t.Fatalf("%d confirmed and %d attempts before the restart, want attempts and none confirmed", n, len(rcv.all()))
	}
	type queuedEvent struct{ id, body string }
	var queued []queuedEvent
	db, err := sql.Open("sqlite3", filepath.Join(dir, "roomrec.db"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(`SELECT event_id, body FROM webhook_events ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var q queuedEvent
		rows.Scan(&q.id, &q.body)
		queued = append(queued, q)
	}
	rows.Close()
	db.Close()
	if len(queued) != 6 {
		t.Fatalf("%d events kept over the restart, want 6", len(queued))
	}
	if first := rcv.all()[0]; first.EventId != queued[0].id {
		t.Errorf("attempted %s before the restart, kept %s", first.EventId, queued[0].id)
	}

	rcv.setCode(http.StatusOK)
	attempts := len(rcv.all())
	startServeWith(t, sim, tg, dir, env)
	waitFor(t, 10*time.Second, "every event after the restart", func() bool { return len(rcv.confirmed()) == 6 })
	time.Sleep(time.Second) // nothing more comes
	got := rcv.confirmed()
	if len(got) != 6 {
		t.Fatalf("%d confirmed, want each of the 6 once", len(got))
	}
	for i, h := range got {
		if h.EventId != queued[i].id || string(h.Body) != queued[i].body {
			t.Errorf("event %d after the restart is %s %s, want %s as queued", i, h.EventType, h.EventId, queued[i].id)
		}
	}
	if n := len(rcv.all()) - attempts; n != 6 {
		t.Errorf("%d requests after the restart, want 6", n)
	}
}

// /healthz reports a webhook URL that has been failing for over an hour,
// and answers 503.
func TestHealthzReportsAFailingWebhook(t *testing.T) {
	sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 4})
	room := sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, Anchor: "主播", Title: "今晚打游戏"})
	tg := telegramtest.Start(t, testToken)
	tg.SetAdmin(groupID, adminID)
	failing, fine := newHookReceiver(t), newHookReceiver(t)
	failing.setCode(http.StatusInternalServerError)
	dir := t.TempDir()
	s := startServeMain(t, sim, tg, dir, map[string]string{"ROOMREC_WEBHOOK_URLS": failing.URL() + "," + fine.URL()},
		func(m *Main) {
			m.Webhooks = func(o *webhook.Options) {
				// Failures are dated two hours back, as if it had failed since.
				o.Now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
				o.Backoff = 50 * time.Millisecond
			}
		})
	if r := ask(t, tg, adminID, "/record 5440"); !strings.Contains(r, "Recording 主播") {
		t.Fatalf("/record = %q", r)
	}
	waitFor(t, 5*time.Second, "danmaku connection", func() bool { return sim.DanmakuConnections(5440) == 1 })
	room.GoLive()
	waitFor(t, 5*time.Second, "a failed attempt", func() bool { return len(failing.all()) >= 1 && len(fine.confirmed()) >= 1 })
	var body string
	var code int
	waitFor(t, 5*time.Second, "/healthz to report it", func() bool {
		resp, err := http.Get(s.url() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body, code = string(b), resp.StatusCode
		return strings.Contains(body, `"unhealthy":true`)
	})
	var health struct {
		Webhooks map[string]map[string]any
	}
	json.Unmarshal([]byte(body), &health)
	bad, ok := health.Webhooks[webhook.Redact(failing.URL())]
	if code != http.StatusServiceUnavailable || !ok || bad["last_error"] != "answered 500 Internal Server Error" || bad["failing_since"] == nil {
		t.Errorf("/healthz = %d %s, want 503 naming the failing URL and why", code, body)
	}
	if good := health.Webhooks[webhook.Redact(fine.URL())]; good == nil || good["unhealthy"] != nil || good["failing_since"] != nil {
		t.Errorf("/healthz says of the working URL %v", good)
	}
}

func TestWebhookConfig(t *testing.T) {
	c, err := LoadConfig(envMap(map[string]string{
		"ROOMREC_WEBHOOK_URLS":   " https://a.example/hook?token=x , http://127.0.0.1:9000/brec,",
		"ROOMREC_WEBHOOK_SECRET": "sekrit-value",
	}), filepath.Join(t.TempDir(), ".env"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"https://a.example/hook?token=x", "http://127.0.0.1:9000/brec"}; !slices.Equal(c.WebhookURLs, want) {
		t.Errorf("WebhookURLs %q, want %q", c.WebhookURLs, want)
	}
	if !slices.Contains(c.Secrets(), "sekrit-value") {
		t.Error("the webhook secret is not among the secrets the log hides")
	}
	_, err = LoadConfig(envMap(map[string]string{
		"ROOMREC_WEBHOOK_URLS": "ftp://a.example/x,localhost:8080/hook,https://b.example/h?k=secret-token,https://b.example/h?k=secret-token",
	}), filepath.Join(t.TempDir(), ".env"))
	if err == nil {
		t.Fatal("bad webhook URLs accepted")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "ftp://a.example/x") || !strings.Contains(lines[1], "localhost:8080") || !strings.Contains(lines[2], "twice") {
		t.Errorf("problems:\n%s\nwant one line each for the FTP URL, the one without a scheme and the repeat", err)
	}
	if strings.Contains(err.Error(), "secret-token") {
		t.Errorf("a problem shows a URL's query: %s", err)
	}
	_ = context.Background
}
