// Package account keeps the Bilibili account roomrec records with: the QR
// login an owner starts from a chat, the login kept across restarts, its
// refresh before Bilibili retires it, and its end. Without a login,
// Bilibili serves at most 480p; with one, the quality asked for.
package account

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"roomrec"
	"roomrec/bilibili"
	"roomrec/storage"
)

// Bilibili is what the account needs of Bilibili's API. *bilibili.Client
// implements it.
type Bilibili interface {
	QRLogin(ctx context.Context) (bilibili.QRCode, error)
	PollQR(ctx context.Context, key string) (bilibili.QRPoll, error)
	Nav(ctx context.Context) (bilibili.Account, error)
	NavAs(ctx context.Context, cred bilibili.Credentials) (bilibili.Account, error)
	CookieInfo(ctx context.Context) (refresh bool, timestamp int64, err error)
	Refresh(ctx context.Context, cur bilibili.Credentials) (bilibili.Credentials, error)
	SetLogin(cred bilibili.Credentials)
	Logout()
}

// Store is what the account needs of the database. *storage.Store
// implements it.
type Store interface {
	Login(ctx context.Context) (storage.BilibiliLogin, error)
	SaveLogin(ctx context.Context, l storage.BilibiliLogin) error
	LoginChecked(ctx context.Context, at time.Time) error
	ExpireLogin(ctx context.Context) (bool, error)
	DeleteLogin(ctx context.Context) error
}

var (
	_ Bilibili = (*bilibili.Client)(nil)
	_ Store    = (*storage.Store)(nil)
)

// Options tune a Keeper. Zero values take the defaults noted.
type Options struct {
	PollEvery  time.Duration // how often a pending QR login is polled; default 2 s
	CheckEvery time.Duration // how often Bilibili is asked whether a refresh is due; default 12 h
	// OnExpired is called (once per login, on a goroutine of the
	// Keeper's) when Bilibili says the session is over: the owners should
	// hear of it.
	OnExpired func(uname string)
	// Secret, if set, is given every cookie value and token a login
	// brings (stored, confirmed, refreshed), so the log can hide them.
	Secret func(values ...string)
	Now    func() time.Time
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.PollEvery <= 0 {
		o.PollEvery = 2 * time.Second
	}
	if o.CheckEvery <= 0 {
		o.CheckEvery = 12 * time.Hour
	}
	if o.OnExpired == nil {
		o.OnExpired = func(string) {}
	}
	if o.Secret == nil {
		o.Secret = func(...string) {}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Status is the login as chats are told of it. It never holds a secret.
type Status struct {
	LoggedIn bool   // a login is in use
	Expired  bool   // a login was stored, but Bilibili ended its session
	Uname    string // the account's name, when one is stored
	// FromCookie: the account is BILIBILI_COOKIE's, not a /login's;
	// roomrec cannot refresh it, and does not store it.
	FromCookie bool
}

// Keeper owns the login: it loads it at Start, hands its cookies to the
// Bilibili client, checks for a refresh at start and every CheckEvery,
// and runs QR logins. Its goroutines stop at Close.
type Keeper struct {
	api   Bilibili
	store Store
	opts  Options
	log   *slog.Logger

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the checker and the QR poll

	mu      sync.Mutex
	status  Status
	cred    bilibili.Credentials // the login in use, if LoggedIn
	pending context.CancelFunc   // the QR login being polled, if any
	qrGen   int                  // counts QR logins, so a replaced one stays quiet
	closed  bool
}

// New returns a Keeper; Start loads the stored login.
func New(api Bilibili, store Store, opts Options) *Keeper {
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Keeper{api: api, store: store, opts: opts, log: opts.Logger, ctx: ctx, cancel: cancel}
}

// Start loads the stored login, if one is stored and not expired, into the
// Bilibili client (the stored login wins over BILIBILI_COOKIE). It returns
// an error only if the database cannot be read. StartChecks begins the
// refresh checks.
func (k *Keeper) Start(ctx context.Context) error {
	l, err := k.store.Login(ctx)
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return fmt.Errorf("read the Bilibili login: %w", err)
	default:
		cred, derr := decodeCredentials(l)
		k.mu.Lock()
		k.status = Status{Uname: l.Uname, Expired: l.Expired}
		if derr == nil {
			k.secret(cred)
		}
		if derr == nil && !l.Expired {
			k.status.LoggedIn, k.cred = true, cred
			k.api.SetLogin(cred)
		}
		k.mu.Unlock()
		if derr != nil {
			k.log.Error("stored Bilibili login unreadable; recording without it", roomrec.LogErr(derr))
		} else if !l.Expired {
			k.log.Info("logged in to Bilibili", slog.String(roomrec.KeyUname, l.Uname))
		}
	}
	return nil
}

// StartChecks begins the refresh checks: one now, then every CheckEvery.
// Call it once the chats are connected: a check can find the login ended,
// and the owners must be reachable to hear it.
func (k *Keeper) StartChecks() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.closed {
		k.wg.Go(k.checkLoop)
	}
}

// Close stops the refresh checks and any QR login being polled, and waits
// for them.
func (k *Keeper) Close() {
	k.mu.Lock()
	k.closed = true
	k.mu.Unlock()
	k.cancel()
	k.wg.Wait()
}

// Status returns the login as chats are told of it.
func (k *Keeper) Status() Status {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.status
}

// checkLoop checks for a due refresh now and every CheckEvery.
func (k *Keeper) checkLoop() {
	for {
		k.check(k.ctx)
		select {
		case <-k.ctx.Done():
			return
		case <-time.After(k.opts.CheckEvery):
		}
	}
}

// check asks Bilibili whether the login should be refreshed, and refreshes
// it if so. A refresh that fails keeps the old cookies, which Bilibili
// honours until a refresh is confirmed; the next check tries again.
func (k *Keeper) check(ctx context.Context) {
	k.mu.Lock()
	cred, in, known := k.cred, k.status.LoggedIn, k.status.Uname != ""
	k.mu.Unlock()
	if !in {
		if !known {
			k.configuredCookie(ctx)
		}
		return
	}
	// Nobody waits on the question: it yields the request budget to
	// calls someone does wait on. A refresh, once begun, is not patient:
	// between rotating the token and confirming it, the session is in
	// the middle of a change that must not stretch over minutes.
	due, _, err := k.api.CookieInfo(bilibili.Patient(ctx))
	if err != nil {
		if ctx.Err() == nil {
			k.log.Warn("could not ask Bilibili whether the login needs a refresh", roomrec.LogErr(err))
		}
		return
	}
	now := k.opts.Now()
	if !due {
		if err := k.store.LoginChecked(ctx, now); err != nil {
			k.log.Warn("login check not saved", roomrec.LogErr(err))
		}
		return
	}
	next, err := k.api.Refresh(ctx, cred)
	k.secret(next)
	if err != nil && errors.Is(err, bilibili.ErrRefreshNotConfirmed) {
		// The new cookies work; the old session is merely not retired.
		k.log.Warn("Bilibili login refreshed but not confirmed", roomrec.LogErr(err))
	} else if err != nil {
		k.log.Warn("Bilibili login refresh failed; keeping the current cookies", roomrec.LogErr(err))
		return
	}
	// A /login, /logout or expiry while the refresh ran stands: the
	// refreshed cookies are kept only for the login they refreshed.
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.status.LoggedIn || k.cred.Value("SESSDATA") != cred.Value("SESSDATA") {
		k.log.Info("Bilibili login changed while it was refreshed; the refresh is dropped")
		return
	}
	uname := k.status.Uname
	if err := k.save(ctx, next, uname, now); err != nil {
		k.log.Error("refreshed Bilibili login not saved; it is used until roomrec stops", roomrec.LogErr(err))
	}
	k.cred = next
	k.log.Info("Bilibili login refreshed", slog.String(roomrec.KeyUname, uname))
}

// configuredCookie learns whose BILIBILI_COOKIE is, if one is set and no
// login is stored, so /status and the alerts tell the truth about it.
func (k *Keeper) configuredCookie(ctx context.Context) {
	acct, err := k.api.Nav(ctx)
	if err != nil || !acct.IsLogin {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.status.Uname == "" {
		k.status = Status{LoggedIn: true, Uname: acct.Uname, FromCookie: true}
	}
}

// save stores a login in one transaction.
func (k *Keeper) save(ctx context.Context, cred bilibili.Credentials, uname string, at time.Time) error {
	cookies, err := json.Marshal(cred.Cookies)
	if err != nil {
		return err
	}
	return k.store.SaveLogin(ctx, storage.BilibiliLogin{
		Cookies: string(cookies), RefreshToken: cred.RefreshToken, Uname: uname,
		Mid: cred.UID(), LoggedIn: at, Checked: at,
	})
}

// secret hands a login's values to Options.Secret.
func (k *Keeper) secret(cred bilibili.Credentials) {
	values := []string{cred.RefreshToken}
	for _, c := range cred.Cookies {
		if len(c.Value) >= 6 { // short flag values would only garble the log
			values = append(values, c.Value)
		}
	}
	k.opts.Secret(values...)
}

func decodeCredentials(l storage.BilibiliLogin) (bilibili.Credentials, error) {
	var cred bilibili.Credentials
	if err := json.Unmarshal([]byte(l.Cookies), &cred.Cookies); err != nil {
		return cred, fmt.Errorf("stored cookies: %w", err)
	}
	cred.RefreshToken = l.RefreshToken
	if cred.IsZero() {
		return cred, errors.New("stored cookies hold no session")
	}
	return cred, nil
}

// LoggedOut is the Bilibili client's OnLoggedOut: Bilibili answered -101
// to the login in use. The login is marked expired (so a restart does not
// use it), recording goes on without it, and OnExpired is called once. It
// returns at once: the database and the owners are dealt with on a
// goroutine of the Keeper's, not the request's that met the -101.
func (k *Keeper) LoggedOut() {
	k.mu.Lock()
	if !k.status.LoggedIn || k.closed {
		k.mu.Unlock()
		return
	}
	k.status.LoggedIn, k.status.Expired = false, true
	k.cred = bilibili.Credentials{}
	uname := k.status.Uname
	k.api.Logout()
	k.wg.Add(1) // under mu while open: Close sets closed under mu first
	k.mu.Unlock()
	k.log.Warn("Bilibili ended the login's session; recording without it", slog.String(roomrec.KeyUname, uname))
	go func() {
		defer k.wg.Done()
		ctx, cancel := context.WithTimeout(k.ctx, 10*time.Second)
		defer cancel()
		first, err := k.store.ExpireLogin(ctx)
		if err != nil {
			k.log.Error("expired login not saved", roomrec.LogErr(err))
		}
		if first || err != nil {
			k.opts.OnExpired(uname)
		}
	}()
}

// Logout forgets the login: recording goes on without it.
func (k *Keeper) Logout(ctx context.Context) error {
	k.mu.Lock()
	k.status, k.cred = Status{}, bilibili.Credentials{}
	k.api.Logout()
	k.mu.Unlock()
	return k.store.DeleteLogin(ctx)
}
