package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"roomrec/storage"
	"roomrec/webhook"
)

// hit is one request a receiver got.
type hit struct {
	Type, ID  string
	Body      []byte
	Header    http.Header
	Status    int // what the receiver answered; 0 when the request was cut
	Confirmed bool
}

// receiver is a webhook endpoint on loopback. answer decides each reply
// from the request's number (1-based) and event; nil answers 200.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	hits   []hit
	answer func(n int, h hit) int
	hang   chan struct{} // while open, every request waits on it
}

func newReceiver(t *testing.T, answer func(n int, h hit) int) *receiver {
	r := &receiver{answer: answer}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) URL() string { return r.srv.URL + "/hook" }

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var env struct{ EventType, EventId string }
	json.Unmarshal(body, &env)
	h := hit{Type: env.EventType, ID: env.EventId, Body: body, Header: req.Header.Clone()}
	r.mu.Lock()
	hang := r.hang
	r.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-req.Context().Done():
			r.mu.Lock()
			r.hits = append(r.hits, h)
			r.mu.Unlock()
			return
		}
	}
	r.mu.Lock()
	h.Status = http.StatusOK
	if r.answer != nil {
		h.Status = r.answer(len(r.hits)+1, h)
	}
	h.Confirmed = h.Status/100 == 2
	r.hits = append(r.hits, h)
	r.mu.Unlock()
	w.WriteHeader(h.Status)
}

func (r *receiver) all() []hit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.hits)
}

// confirmed returns the ids of the events confirmed, in order.
func (r *receiver) confirmed() []string {
	var ids []string
	for _, h := range r.all() {
		if h.Confirmed {
			ids = append(ids, h.ID)
		}
	}
	return ids
}

func openStore(t testing.TB, path string) *storage.Store {
	t.Helper()
	s, err := storage.Open(context.Background(), path, storage.Options{RecordingsDir: filepath.Dir(path)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fast are delivery options for tests: quick retries, short timeouts.
func fast(urls ...string) webhook.Options {
	return webhook.Options{URLs: urls, Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Timeout: 2 * time.Second}
}

func start(t testing.TB, s *storage.Store, opts webhook.Options) *webhook.Deliverer {
	t.Helper()
	d := webhook.New(s, opts)
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// broadcast records one broadcast of a room with one file, which a chat
// keeps, queueing its six events.
func broadcast(t testing.TB, s *storage.Store, room int64, at time.Time) {
	t.Helper()
	ctx := context.Background()
	chat, err := s.EnsureChat(ctx, storage.Chat{Platform: storage.Telegram, PlatformID: "-100"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Subscribe(ctx, chat.ID, storage.Room{RoomID: room}, storage.Record, "admin"); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateRoom(ctx, storage.Room{RoomID: room, ShortID: 1, Anchor: "主播", Title: "今晚", Area: "单机游戏", ParentArea: "游戏"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartLiveSession(ctx, room, at, "", "今晚"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartRecordingSession(ctx, room, at); err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("%d/%d.flv", room, at.UnixNano())
	if _, err := s.CreateRecording(ctx, storage.NewRecording{RoomID: room, LiveStart: at, Path: path, Title: "今晚", Started: at}); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteRecording(ctx, path, storage.RecordingEnd{Size: 1000, Duration: 5 * time.Second, Ended: at.Add(5 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := s.EndRecordingSession(ctx, room, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EndLiveSession(ctx, room, at, at.Add(6*time.Second)); err != nil {
		t.Fatal(err)
	}
}

// sequence is the events of one broadcast, in order.
var sequence = []string{webhook.StreamStarted, webhook.SessionStarted, webhook.FileOpening, webhook.FileClosed, webhook.SessionEnded, webhook.StreamEnded}

// queued returns what the outbox holds for url.
func queued(t testing.TB, s *storage.Store, url string) []webhook.Pending {
	t.Helper()
	p, err := s.PendingWebhooks(context.Background(), url, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func ids(p []webhook.Pending) []string {
	var out []string
	for _, e := range p {
		out = append(out, e.ID)
	}
	return out
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func status(t *testing.T, d *webhook.Deliverer, i int) webhook.Status {
	t.Helper()
	st, err := d.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st[i]
}

// A receiver that answers 500 three times, then 200, gets every event
// confirmed once, in the order queued.
func TestRetriedUntilConfirmedInOrder(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "roomrec.db"))
	defer s.Close()
	rcv := newReceiver(t, func(n int, _ hit) int {
		if n <= 3 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	// Queued before delivery starts (a receiver that is slow to come up):
	// the order must hold whatever is in flight.
	if err := s.RegisterWebhooks(context.Background(), []string{rcv.URL()}); err != nil {
		t.Fatal(err)
	}
	broadcast(t, s, 5440, time.Now())
	want := ids(queued(t, s, rcv.URL()))
	if len(want) != len(sequence) {
		t.Fatalf("%d events queued, want %d", len(want), len(sequence))
	}
	d := start(t, s, fast(rcv.URL()))
	waitFor(t, 5*time.Second, "every event confirmed", func() bool { return len(rcv.confirmed()) == len(want) })
	time.Sleep(100 * time.Millisecond) // nothing more comes
	if got := rcv.confirmed(); !slices.Equal(got, want) {
		t.Errorf("confirmed %v, want each once in order %v", got, want)
	}
	hits := rcv.all()
	if len(hits) != 3+len(want) {
		t.Errorf("%d requests, want %d", len(hits), 3+len(want))
	}
	for i := range 4 {
		if hits[i].ID != want[0] {
			t.Errorf("attempt %d was for %s, want the first event again, %s", i+1, hits[i].ID, want[0])
		}
	}
	for i, h := range hits[3:] {
		if h.Type != sequence[i] || h.Header.Get("Content-Type") != "application/json" || h.Header.Get(webhook.SignatureHeader) != "" {
			t.Errorf("request %d: %s, Content-Type %q, signature %q", i+4, h.Type, h.Header.Get("Content-Type"), h.Header.Get(webhook.SignatureHeader))
		}
	}
	if st := status(t, d, 0); st.Delivered != 6 || st.Retried != 3 || st.GivenUp != 0 || st.Pending != 0 || !st.FailingSince.IsZero() {
		t.Errorf("status %+v, want 6 delivered, 3 retried, none pending or failing", st)
	}
	if n := len(queued(t, s, rcv.URL())); n != 0 {
		t.Errorf("%d events still queued", n)
	}
}

// A 4xx other than 408 and 429 is given up after one attempt and the next
// event goes; 408, 429 and 5xx are retried.
func TestWhichAnswersAreGivenUp(t *testing.T) {
	for _, c := range []struct {
		code    int
		retried bool
	}{
		{http.StatusBadRequest, false},
		{http.StatusNotFound, false},
		{http.StatusGone, false},
		{http.StatusRequestTimeout, true},
		{http.StatusTooManyRequests, true},
		{http.StatusServiceUnavailable, true},
		{http.StatusFound, true}, // a redirect that would turn the POST into a GET
	} {
		t.Run(fmt.Sprint(c.code), func(t *testing.T) {
			s := openStore(t, filepath.Join(t.TempDir(), "roomrec.db"))
			defer s.Close()
			rcv := newReceiver(t, func(n int, h hit) int {
				if h.Type == webhook.StreamStarted && n == 1 {
					return c.code
				}
				return http.StatusOK
			})
			opts := fast(rcv.URL())
			var logs syncBuffer
			opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			d := start(t, s, opts)
			broadcast(t, s, 5440, time.Now())
			waitFor(t, 5*time.Second, "the rest of the events", func() bool {
				got := rcv.all()
				return len(got) > 0 && got[len(got)-1].Type == webhook.StreamEnded && got[len(got)-1].Confirmed
			})
			hits := rcv.all()
			st := status(t, d, 0)
			if c.retried {
				if len(hits) != 7 || !hits[1].Confirmed || hits[1].ID != hits[0].ID || st.Retried != 1 || st.GivenUp != 0 || st.Delivered != 6 {
					t.Errorf("%d: %d requests, status %+v; want the first event retried and confirmed", c.code, len(hits), st)
				}
				return
			}
			if len(hits) != 6 || hits[1].Type != webhook.SessionStarted || st.GivenUp != 1 || st.Retried != 0 || st.Delivered != 5 {
				t.Errorf("%d: %d requests, status %+v; want the first event given up and the rest delivered", c.code, len(hits), st)
			}
			if log := logs.String(); !strings.Contains(log, "webhook event given up") || !strings.Contains(log, fmt.Sprint(c.code)) {
				t.Errorf("the log does not say what was given up and why:\n%s", log)
			}
		})
	}
}

// With a secret, every POST carries the body's HMAC-SHA256, as a receiver
// computes it.
func TestSignatureVerifies(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "roomrec.db"))
	defer s.Close()
	const secret = "s3cret-for-hooks"
	rcv := newReceiver(t, nil)
	opts := fast(rcv.URL())
	opts.Secret = secret
	start(t, s, opts)
	broadcast(t, s, 5440, time.Now())
	waitFor(t, 5*time.Second, "every event", func() bool { return len(rcv.confirmed()) == len(sequence) })
	for _, h := range rcv.all() {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(h.Body)
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		if got := h.Header.Get("X-Roomrec-Signature"); !hmac.Equal([]byte(got), []byte(want)) {
			t.Errorf("%s signed %q, want %q", h.Type, got, want)
		}
	}
}

// A receiver that hangs is cut at the timeout and tried again, and holds
// up no other URL meanwhile.
func TestHungReceiverHoldsUpNoOther(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "roomrec.db"))
	defer s.Close()
	hung, ok := newReceiver(t, nil), newReceiver(t, nil)
	release := make(chan struct{})
	hung.hang = release
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	opts := fast(hung.URL(), ok.URL())
	opts.Timeout = 1500 * time.Millisecond
	d := start(t, s, opts)
	began := time.Now()
	broadcast(t, s, 5440, time.Now())
	waitFor(t, 5*time.Second, "the other URL's events", func() bool { return len(ok.confirmed()) == len(sequence) })
	if took := time.Since(began); took > time.Second {
		t.Errorf("the other URL got its events after %s, want them while the first hangs", took)
	}
	waitFor(t, 5*time.Second, "the hung attempt cut", func() bool { return len(hung.all()) >= 1 })
	if cut := time.Since(began); cut < opts.Timeout-100*time.Millisecond {
		t.Errorf("the hung attempt ended after %s, before the %s timeout", cut, opts.Timeout)
	}
	if st := status(t, d, 0); st.Retried == 0 || st.FailingSince.IsZero() || st.Pending != len(sequence) {
		t.Errorf("hung URL status %+v, want failing with everything pending", st)
	}
	close(release)
	hung.mu.Lock()
	hung.hang = nil
	hung.mu.Unlock()
	waitFor(t, 10*time.Second, "the hung URL's events once it answers", func() bool { return len(hung.confirmed()) == len(sequence) })
	if got, want := hung.confirmed(), ok.confirmed(); !slices.Equal(got, want) {
		t.Errorf("the URLs were confirmed %v and %v, want the same events in the same order", got, want)
	}
}

// What a receiver did not confirm before a restart is sent after it, once,
// with the same EventId and body.
func TestRestartResendsWithTheSameEventID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "roomrec.db")
	down := true
	var mu sync.Mutex
	rcv := newReceiver(t, func(int, hit) int {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	s := openStore(t, path)
	d := webhook.New(s, fast(rcv.URL()))
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	broadcast(t, s, 5440, time.Now())
	before := queued(t, s, rcv.URL())
	waitFor(t, 5*time.Second, "attempts while the receiver is down", func() bool { return len(rcv.all()) >= 2 })
	d.Close()
	s.Close()
	attempted := rcv.all()

	mu.Lock()
	down = false
	mu.Unlock()
	s = openStore(t, path)
	defer s.Close()
	start(t, s, fast(rcv.URL()))
	waitFor(t, 5*time.Second, "every event after the restart", func() bool { return len(rcv.confirmed()) == len(before) })
	time.Sleep(100 * time.Millisecond)
	if got := rcv.confirmed(); !slices.Equal(got, ids(before)) {
		t.Errorf("confirmed %v after the restart, want each once: %v", got, ids(before))
	}
	if attempted[0].ID != before[0].ID {
		t.Errorf("attempted %s before the restart, want %s", attempted[0].ID, before[0].ID)
	}
	for i, h := range rcv.all()[len(attempted):] {
		if string(h.Body) != string(before[i].Body) {
			t.Errorf("event %d after the restart:\n%s\nwant as queued:\n%s", i, h.Body, before[i].Body)
		}
	}
}

// An event still failing GiveUpAfter after it was queued is given up, and
// the URL goes on with the next.
func TestGivenUpAfterItsTime(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "roomrec.db"))
	defer s.Close()
	rcv := newReceiver(t, func(n int, h hit) int {
		if h.Type == webhook.StreamStarted {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	var mu sync.Mutex
	now := time.Now()
	opts := fast(rcv.URL())
	opts.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	d := start(t, s, opts)
	broadcast(t, s, 5440, time.Now())
	waitFor(t, 5*time.Second, "attempts", func() bool { return len(rcv.all()) >= 3 })
	if got := len(rcv.confirmed()); got != 0 {
		t.Fatalf("%d confirmed behind a failing first event", got)
	}
	mu.Lock()
	now = now.Add(25 * time.Hour)
	mu.Unlock()
	waitFor(t, 5*time.Second, "the rest", func() bool { return len(rcv.confirmed()) == len(sequence)-1 })
	if st := status(t, d, 0); st.GivenUp != 1 || st.Pending != 0 {
		t.Errorf("status %+v, want the first given up", st)
	}
}

// Retry waits grow from Backoff to MaxBackoff and honour Retry-After.
func TestRetryAfterIsHonoured(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "roomrec.db"))
	defer s.Close()
	var mu sync.Mutex
	var at []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		at = append(at, time.Now())
		if len(at) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	opts := fast(srv.URL)
	opts.MaxBackoff = 5 * time.Second
	start(t, s, opts)
	if err := s.UpdateRoom(context.Background(), storage.Room{RoomID: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartLiveSession(context.Background(), 1, time.Now(), "", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the retry", func() bool { mu.Lock(); defer mu.Unlock(); return len(at) == 2 })
	if gap := at[1].Sub(at[0]); gap < 900*time.Millisecond {
		t.Errorf("retried after %s, want the second Retry-After asked for", gap)
	}
}

// syncBuffer is a log destination safe for the workers' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
