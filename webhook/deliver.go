package webhook

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"roomrec"
)

// SignatureHeader carries the body's HMAC-SHA256 when a secret is set:
// "sha256=" and the MAC in lowercase hex.
const SignatureHeader = "X-Roomrec-Signature"

// Sign returns the SignatureHeader value for body under secret.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Pending is an event a URL has neither confirmed nor given up.
type Pending struct {
	Seq    int64 // the outbox's order, the order of delivery
	ID     string
	Type   string
	Queued time.Time // when the fact it reports was recorded
	Body   []byte    // posted byte for byte on every attempt
}

// Backlog is where a URL stands in the outbox.
type Backlog struct {
	URL          string
	Pending      int       // events not yet confirmed or given up
	FailingSince time.Time // the first failure since the last delivery; zero when not failing
	LastError    string
}

// Outbox is the durable queue the events wait in, one cursor per URL.
// *storage.Store implements it.
type Outbox interface {
	// RegisterWebhooks makes urls the ones events are kept for: a URL new
	// to the outbox starts with the events queued from now on.
	RegisterWebhooks(ctx context.Context, urls []string) error
	// PendingWebhooks returns, oldest first, up to limit events url has
	// neither confirmed nor given up.
	PendingWebhooks(ctx context.Context, url string, limit int) ([]Pending, error)
	// WebhookDelivered records that url confirmed every event up to seq.
	WebhookDelivered(ctx context.Context, url string, seq int64) error
	// WebhookGivenUp records that url will not get the event seq.
	WebhookGivenUp(ctx context.Context, url string, seq int64, reason string, at time.Time) error
	// WebhookFailed records a failed attempt that will be retried.
	WebhookFailed(ctx context.Context, url, reason string, at time.Time) error
	// WebhookBacklog returns every registered URL's backlog.
	WebhookBacklog(ctx context.Context) ([]Backlog, error)
	// WebhookQueued returns a channel closed when an event is next queued.
	WebhookQueued() <-chan struct{}
}

// Options configure a Deliverer. Zero values take the defaults noted.
type Options struct {
	URLs   []string
	Secret string // when set, every POST is signed (SignatureHeader)
	// Timeout bounds one attempt, from connecting to reading the answer;
	// default 10 s. A receiver that hangs is cut then and tried again.
	Timeout time.Duration
	// Backoff is the wait before the first retry, doubled for each
	// further one up to MaxBackoff; defaults 1 s and 2 min.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// GiveUpAfter is how long an event is retried, counted from when it
	// was queued; default 24 h.
	GiveUpAfter time.Duration
	Transport   http.RoundTripper // default a clone of http.DefaultTransport
	UserAgent   string            // default "roomrec"
	Now         func() time.Time
	Logger      *slog.Logger
}

func (o Options) withDefaults() Options {
	o.Timeout = cmp.Or(o.Timeout, 10*time.Second)
	o.Backoff = cmp.Or(o.Backoff, time.Second)
	o.MaxBackoff = cmp.Or(o.MaxBackoff, 2*time.Minute)
	o.GiveUpAfter = cmp.Or(o.GiveUpAfter, 24*time.Hour)
	o.UserAgent = cmp.Or(o.UserAgent, "roomrec")
	if o.Transport == nil {
		o.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Deliverer posts every queued event to every URL: in order per URL, each
// URL on a goroutine of its own, so a slow or failing receiver holds up
// only itself. It never blocks whoever queues events.
type Deliverer struct {
	outbox  Outbox
	opts    Options
	client  *http.Client
	workers []*worker
	cancel  context.CancelFunc
	running sync.WaitGroup
}

// New returns a Deliverer for opts.URLs reading from outbox. Start starts it.
func New(outbox Outbox, opts Options) *Deliverer {
	opts = opts.withDefaults()
	d := &Deliverer{outbox: outbox, opts: opts}
	d.client = &http.Client{
		Transport: opts.Transport,
		// A 301, 302 or 303 turns a POST into a GET without the body:
		// the answer is taken as it is and retried (307 and 308 keep
		// the POST and are followed).
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.Method != http.MethodPost || len(via) >= 5 {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
	names := map[string]bool{}
	for i, u := range opts.URLs {
		name := Redact(u)
		if names[name] {
			name += "#" + strconv.Itoa(i+1)
		}
		names[name] = true
		d.workers = append(d.workers, &worker{d: d, url: u, name: name,
			log: opts.Logger.With(slog.String("webhook", name))})
	}
	return d
}

// Start registers the URLs with the outbox and starts a worker for each.
// Events queued before Start are delivered: a restart resends what no
// receiver confirmed. It returns an error if the outbox fails.
func (d *Deliverer) Start(ctx context.Context) error {
	if err := d.outbox.RegisterWebhooks(ctx, d.opts.URLs); err != nil {
		return fmt.Errorf("register webhooks: %w", err)
	}
	backlog, err := d.outbox.WebhookBacklog(ctx)
	if err != nil {
		return fmt.Errorf("read webhook backlog: %w", err)
	}
	for _, b := range backlog {
		for _, w := range d.workers {
			if w.url == b.URL && !b.FailingSince.IsZero() {
				w.setFailing(b.FailingSince, b.LastError)
			}
		}
	}
	wctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	for _, w := range d.workers {
		d.running.Go(func() { w.run(wctx) })
	}
	return nil
}

// Close stops every worker and waits for them, so nothing of the Deliverer
// touches the outbox after it returns. An attempt in flight is cut; its
// event is sent again after the next Start.
func (d *Deliverer) Close() {
	if d.cancel != nil {
		d.cancel()
	}
	d.running.Wait()
}

// Status is one URL's deliveries since Start and where it stands.
type Status struct {
	URL                         string // without its query, user and password: safe to show
	Delivered, Retried, GivenUp uint64 // attempts by result: confirmed, failed and retried, given up
	Pending                     int    // events not yet confirmed or given up
	FailingSince                time.Time
	LastError                   string
}

// Status returns every URL's status, in the order of Options.URLs. It
// returns an error if the outbox cannot be read.
func (d *Deliverer) Status(ctx context.Context) ([]Status, error) {
	backlog, err := d.outbox.WebhookBacklog(ctx)
	if err != nil {
		return nil, err
	}
	pending := map[string]int{}
	for _, b := range backlog {
		pending[b.URL] = b.Pending
	}
	out := make([]Status, 0, len(d.workers))
	for _, w := range d.workers {
		w.mu.Lock()
		s := Status{URL: w.name, Pending: max(pending[w.url]-w.unwritten, 0), FailingSince: w.failingSince, LastError: w.lastError}
		w.mu.Unlock()
		s.Delivered, s.Retried, s.GivenUp = w.delivered.Load(), w.retried.Load(), w.givenUp.Load()
		out = append(out, s)
	}
	return out, nil
}

// Redact returns u without what may be a credential (user, password,
// query, fragment), for logs, metrics and /healthz.
func Redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	p.User, p.RawQuery, p.ForceQuery, p.Fragment, p.RawFragment = nil, "", false, "", ""
	return p.String()
}

// worker delivers to one URL.
type worker struct {
	d    *Deliverer
	url  string
	name string
	log  *slog.Logger

	delivered, retried, givenUp atomic.Uint64

	mu           sync.Mutex
	failingSince time.Time
	lastError    string
	confirmedSeq int64 // the last event confirmed
	unwritten    int   // confirmations not yet written to the outbox
}

func (w *worker) setFailing(since time.Time, reason string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failingSince, w.lastError = since, reason
}

// batch is how many events a worker reads from the outbox at a time.
const batch = 64

// idlePoll is how often an idle worker looks at the outbox without being
// woken, in case a wake-up was missed.
const idlePoll = time.Minute

func (w *worker) run(ctx context.Context) {
	defer func() {
		// What was confirmed is written before the worker goes, so the
		// next start does not send it again.
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := w.commit(cctx); err != nil {
			w.log.Warn("webhook confirmations not recorded; those events will be sent again", roomrec.LogErr(err))
		}
	}()
	retries := 0 // consecutive failures of the outbox
	for ctx.Err() == nil {
		queued := w.d.outbox.WebhookQueued()
		err := w.commit(ctx)
		var events []Pending
		if err == nil {
			events, err = w.d.outbox.PendingWebhooks(ctx, w.url, batch)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			retries++
			w.log.Error("webhook outbox failing; trying again", roomrec.LogErr(err))
			sleep(ctx, w.backoff(retries, 0))
			continue
		}
		retries = 0
		if len(events) == 0 {
			select {
			case <-ctx.Done():
			case <-queued:
			case <-time.After(idlePoll):
			}
			continue
		}
		for _, ev := range events {
			if !w.deliver(ctx, ev) {
				break // the outbox failed, or ctx ended: read it afresh
			}
		}
	}
}

// commit records in the outbox the events confirmed since it last did.
// Confirmations are written a batch at a time, not one by one, so that a
// busy receiver costs the database (which the recorder writes its events
// to) one write per batch; a crash can make a receiver get up to a batch
// of events again, which at-least-once allows.
func (w *worker) commit(ctx context.Context) error {
	w.mu.Lock()
	seq, n := w.confirmedSeq, w.unwritten
	w.mu.Unlock()
	if n == 0 {
		return nil
	}
	if err := w.d.outbox.WebhookDelivered(ctx, w.url, seq); err != nil {
		return err
	}
	w.mu.Lock()
	w.unwritten = 0
	w.mu.Unlock()
	return nil
}

// deliver posts ev until it is confirmed or given up. A give-up is written
// to the outbox at once; a confirmation at the next commit. It returns
// false if ctx ended or the outbox failed.
func (w *worker) deliver(ctx context.Context, ev Pending) bool {
	log := w.log.With(slog.String(roomrec.KeyEvent, ev.Type), slog.String("event_id", ev.ID))
	for attempt := 1; ; attempt++ {
		res := w.post(ctx, ev)
		if ctx.Err() != nil {
			return false // cut by shutdown: sent again after the next start
		}
		now := w.d.opts.Now()
		switch {
		case res.ok:
			w.delivered.Add(1)
			w.mu.Lock()
			was := w.failingSince
			w.failingSince, w.lastError = time.Time{}, ""
			w.confirmedSeq = ev.Seq
			w.unwritten++
			w.mu.Unlock()
			if !was.IsZero() {
				log.Info("webhook delivered again", slog.Duration("after_failing_for", now.Sub(was)))
			}
			return true
		case !res.retry || now.Sub(ev.Queued) >= w.d.opts.GiveUpAfter:
			reason := res.reason
			if res.retry {
				reason = fmt.Sprintf("still failing %s after it was queued: %s", w.d.opts.GiveUpAfter, res.reason)
			}
			// The outbox's cursor moves past this event, and so past every
			// confirmed one before it.
			if err := w.d.outbox.WebhookGivenUp(ctx, w.url, ev.Seq, reason, now); err != nil {
				log.Error("webhook given up but not marked", roomrec.LogErr(err))
				sleep(ctx, w.backoff(1, 0))
				return false
			}
			w.givenUp.Add(1)
			w.mu.Lock()
			w.unwritten = 0
			w.mu.Unlock()
			w.noteFailure(now, reason)
			log.Warn("webhook event given up", slog.String(roomrec.KeyReason, reason), slog.Int(roomrec.KeyAttempts, attempt))
			return true
		}
		w.retried.Add(1)
		first := w.noteFailure(now, res.reason)
		// Before a wait that may be long: what was confirmed is written.
		if err := w.commit(ctx); err != nil && ctx.Err() == nil {
			log.Warn("webhook confirmations not recorded yet", roomrec.LogErr(err))
		}
		if err := w.d.outbox.WebhookFailed(ctx, w.url, res.reason, now); err != nil && ctx.Err() == nil {
			log.Warn("webhook failure not recorded", roomrec.LogErr(err))
		}
		wait := w.backoff(attempt, res.retryAfter)
		if first {
			log.Warn("webhook failing; retrying", slog.String(roomrec.KeyReason, res.reason), roomrec.LogRetryIn(wait))
		} else {
			log.Debug("webhook still failing; retrying", slog.String(roomrec.KeyReason, res.reason), roomrec.LogRetryIn(wait))
		}
		if !sleep(ctx, wait) {
			return false
		}
	}
}

// noteFailure keeps when the URL started failing and why it fails now. It
// reports whether this failure starts a streak.
func (w *worker) noteFailure(now time.Time, reason string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	first := w.failingSince.IsZero()
	if first {
		w.failingSince = now
	}
	w.lastError = reason
	return first
}

// backoff returns the wait before retry n (1-based): Backoff doubled each
// time up to MaxBackoff, with ±20% jitter so receivers that come back
// are not hit by every roomrec at once, and at least what the receiver
// asked for with Retry-After (capped at MaxBackoff too).
func (w *worker) backoff(n int, retryAfter time.Duration) time.Duration {
	o := w.d.opts
	d := o.Backoff
	for i := 1; i < n && d < o.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, o.MaxBackoff)
	d = d - d/5 + rand.N(d*2/5+1)
	return max(d, min(retryAfter, o.MaxBackoff))
}

// result is how one attempt went.
type result struct {
	ok         bool
	retry      bool          // not ok, and worth another attempt
	reason     string        // why not ok, for the log and /healthz
	retryAfter time.Duration // what the receiver asked for, if anything
}

// post makes one attempt at ev. 2xx confirms it; 408, 429, any other
// status, a network error or a timeout are retried; any other 4xx says
// the receiver will never take it.
func (w *worker) post(ctx context.Context, ev Pending) result {
	o := w.d.opts
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(ev.Body))
	if err != nil {
		return result{reason: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", o.UserAgent)
	if o.Secret != "" {
		req.Header.Set(SignatureHeader, Sign(o.Secret, ev.Body))
	}
	resp, err := w.d.client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return result{retry: true, reason: fmt.Sprintf("no answer within %s", o.Timeout)}
		}
		return result{retry: true, reason: plainError(err)}
	}
	// Read (a little of) the answer, so the connection is reused.
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return result{retry: true, reason: fmt.Sprintf("answer %d not read within %s", code, o.Timeout)}
		}
		return result{ok: true}
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500, code < 400:
		return result{retry: true, reason: "answered " + resp.Status, retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), o.Now())}
	default:
		return result{reason: "answered " + resp.Status + ", which is not retried"}
	}
}

// plainError drops the URL a *url.Error quotes: its query may hold a token.
func plainError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// sleep waits for d or until ctx ends, reporting whether the wait completed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Flush waits until every URL has confirmed or given up what is queued,
// leaving out URLs that are failing now (they would not confirm it in
// time), or until ctx ends.
func (d *Deliverer) Flush(ctx context.Context) {
	for {
		st, err := d.Status(ctx)
		if err != nil {
			return
		}
		waiting := false
		for _, s := range st {
			if s.Pending > 0 && s.FailingSince.IsZero() {
				waiting = true
			}
		}
		if !waiting || !sleep(ctx, 20*time.Millisecond) {
			return
		}
	}
}
