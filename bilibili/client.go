package bilibili

import (
	"cmp"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// UserAgent is a current desktop Chrome, which is what Bilibili's web API
// expects to talk to.
const UserAgent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36"

// The website's origin; every request says it comes from there.
const (
	referer = "https://live.bilibili.com/"
	origin  = "https://live.bilibili.com"
)

// maxBody bounds what is read of an API response; real ones are a few KiB.
const maxBody = 4 << 20

// Endpoints are the base URLs of the Bilibili hosts the client talks to.
// These are the only hosts that ever get the login cookies.
type Endpoints struct {
	Live     string // api.live.bilibili.com: rooms, play URLs, danmaku servers
	Main     string // api.bilibili.com: WBI keys, buvid3, nav
	Passport string // passport.bilibili.com: QR login, cookie refresh
	WWW      string // www.bilibili.com: the correspond page of a cookie refresh
}

// DefaultEndpoints returns Bilibili's real hosts.
func DefaultEndpoints() Endpoints {
	return Endpoints{
		Live:     "https://api.live.bilibili.com",
		Main:     "https://api.bilibili.com",
		Passport: "https://passport.bilibili.com",
		WWW:      "https://www.bilibili.com",
	}
}

// SingleEndpoint sends every host's requests to base, as BILIBILI_API_URL
// does for the simulator.
func SingleEndpoint(base string) Endpoints {
	base = strings.TrimRight(base, "/")
	return Endpoints{Live: base, Main: base, Passport: base, WWW: base}
}

// Options configure a Client.
type Options struct {
	Endpoints Endpoints     // a zero field means Bilibili's real host for it
	Cookie    string        // BILIBILI_COOKIE, sent while no login is set; never logged
	Timeout   time.Duration // per request; default 10 s
	// OnLoggedOut is called once per login set with SetLogin, the first
	// time Bilibili answers -101 (not logged in) to a request that carried
	// it: the session has expired or was ended elsewhere. It runs on the
	// goroutine that made the request, so it should return quickly.
	OnLoggedOut func()
	// RefreshKey is the RSA public key a cookie refresh encrypts its
	// correspond path with. Nil means Bilibili's published key; tests
	// against the simulator pass its key.
	RefreshKey *rsa.PublicKey
	// Budget is the allowance every API request draws from. Nil means no
	// limit, which suits tests; roomrec always sets one
	// (ROOMREC_API_RATE, ROOMREC_API_BURST: DefaultRate and DefaultBurst).
	Budget *Budget
}

// Client talks to Bilibili's HTTP API as the website does. It is safe for
// concurrent use; create one and share it.
//
// Its requests carry cookies: the login set with SetLogin, or else the
// configured BILIBILI_COOKIE, plus the buvid3 device id. They are attached
// to each request by the client itself, and only to requests for the
// Endpoints; the HTTP client's own cookie jar, if it has one, is not used,
// so a Set-Cookie from a login answer can never be replayed to a stream
// CDN that shares the HTTP client.
type Client struct {
	ep          Endpoints
	hc          *http.Client
	log         *slog.Logger
	timeout     time.Duration
	cookie      string // Options.Cookie
	uid         int64  // DedeUserID in Options.Cookie
	onLoggedOut func()
	refreshKey  *rsa.PublicKey
	budget      *Budget
	now         func() time.Time

	// One fetch of buvid3, and of the WBI keys, at a time: a thousand
	// rooms connecting at once need each fetched once, not a thousand
	// times.
	buvidFetch, wbiFetching sync.Mutex

	mu       sync.Mutex
	buvid    string
	wbiKey   string
	wbiFetch time.Time
	login    *Credentials // nil: logged out, Options.Cookie applies
	loginGen uint64       // bumped by SetLogin and Logout
	reported bool         // OnLoggedOut was called for loginGen
}

// wbiKeyTTL is how long WBI keys are trusted; the website refreshes them
// daily, so a few hours keeps well inside that.
const wbiKeyTTL = 4 * time.Hour

// NewClient returns a Client using hc for every request. A nil hc uses
// http.DefaultClient; a nil logger discards.
func NewClient(opts Options, hc *http.Client, logger *slog.Logger) *Client {
	def := DefaultEndpoints()
	ep := opts.Endpoints
	ep.Live = cmp.Or(ep.Live, def.Live)
	ep.Main = cmp.Or(ep.Main, def.Main)
	ep.Passport = cmp.Or(ep.Passport, def.Passport)
	ep.WWW = cmp.Or(ep.WWW, def.WWW)
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	if hc.Jar != nil {
		// Cookies are this client's to attach; a shared jar would keep
		// the login's Set-Cookie for whatever else uses it.
		own := *hc
		own.Jar = nil
		hc = &own
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.RefreshKey == nil {
		opts.RefreshKey = bilibiliRefreshKey()
	}
	c := &Client{
		ep: ep, hc: hc, log: logger, timeout: opts.Timeout,
		cookie: strings.TrimSpace(opts.Cookie), onLoggedOut: opts.OnLoggedOut,
		refreshKey: opts.RefreshKey, budget: opts.Budget, now: time.Now,
	}
	for _, ck := range parseCookies(c.cookie) {
		switch ck.Name {
		case "buvid3":
			c.buvid = ck.Value
		case "DedeUserID":
			fmt.Sscan(ck.Value, &c.uid)
		}
	}
	return c
}

// NewHTTPClient returns an HTTP client whose connections use the named
// network: "any" (or ""), "ipv4" or "ipv6". Its one transport is meant to be
// shared by every request.
func NewHTTPClient(network string) (*http.Client, error) {
	var tcp string
	switch network {
	case "", "any":
		tcp = "tcp"
	case "ipv4":
		tcp = "tcp4"
	case "ipv6":
		tcp = "tcp6"
	default:
		return nil, fmt.Errorf("network %q is not one of any, ipv4, ipv6", network)
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DialContext = func(ctx context.Context, _, addr string) (net.Conn, error) {
		return dialer.DialContext(ctx, tcp, addr)
	}
	transport.MaxIdleConnsPerHost = 16
	return &http.Client{Transport: transport}, nil
}

// Network returns the tcp network name the dialer of a client from
// NewHTTPClient uses, for the websocket dialer to match.
func Network(network string) string {
	switch network {
	case "ipv4":
		return "tcp4"
	case "ipv6":
		return "tcp6"
	}
	return "tcp"
}

// UID returns the logged-in user id: the login's DedeUserID while one is
// set, else the configured cookie's, else 0.
func (c *Client) UID() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.login != nil {
		return c.login.UID()
	}
	return c.uid
}

// WebsocketHeader returns the headers a danmaku websocket dial should send:
// the browser's User-Agent and Origin and the cookies, buvid3 included once
// it is known.
func (c *Client) WebsocketHeader() http.Header {
	h := http.Header{}
	h.Set("User-Agent", UserAgent)
	h.Set("Origin", origin)
	if ck := c.cookieHeader(); ck != "" {
		h.Set("Cookie", ck)
	}
	return h
}

// cookieHeader returns the cookies a request with the client's current
// login (or configured cookie) carries.
func (c *Client) cookieHeader() string {
	h, _ := c.cookiesFor(sendCurrent, nil)
	return h
}

// Which session's cookies a request carries.
type sendAs int

const (
	sendCurrent  sendAs = iota // the login, else Options.Cookie
	sendGuest                  // no session at all: buvid3 only (QR login)
	sendExplicit               // the Credentials passed along (cookie refresh)
)

// cookiesFor returns the Cookie header for a request sent as as, and the
// login generation it belongs to when it carries the current login's
// session (0 otherwise), so that a -101 answer can be pinned on it.
func (c *Client) cookiesFor(as sendAs, explicit *Credentials) (header string, gen uint64) {
	c.mu.Lock()
	var base string
	switch {
	case as == sendExplicit && explicit != nil:
		base = explicit.header()
		if c.login != nil && explicit.sameSession(*c.login) {
			gen = c.loginGen
		}
	case as == sendGuest:
	case c.login != nil:
		base, gen = c.login.header(), c.loginGen
	default:
		base = c.cookie
	}
	buvid := c.buvid
	c.mu.Unlock()
	if buvid != "" && !hasCookie(base, "buvid3") {
		if base != "" {
			base += "; "
		}
		base += "buvid3=" + buvid
	}
	return base, gen
}

// hasCookie reports whether a Cookie header names the cookie.
func hasCookie(header, name string) bool {
	for _, ck := range parseCookies(header) {
		if ck.Name == name {
			return true
		}
	}
	return false
}

func parseCookies(s string) []*http.Cookie {
	if s == "" {
		return nil
	}
	cookies, err := http.ParseCookie(s)
	if err != nil {
		// A hand-pasted browser cookie may have stray separators; take
		// what parses.
		for _, part := range strings.Split(s, ";") {
			if name, value, ok := strings.Cut(strings.TrimSpace(part), "="); ok && name != "" {
				cookies = append(cookies, &http.Cookie{Name: name, Value: value})
			}
		}
	}
	return cookies
}

// envelope is the wrapper around every API answer. Data is kept raw so that
// an error answer whose data is [] or null does not fail to decode.
type envelope struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Msg     string          `json:"msg"`
	Data    json.RawMessage `json:"data"`
}

// apiHost names one of the Endpoints. Requests are built from these only,
// which is what keeps the cookies on Bilibili's API hosts.
type apiHost int

const (
	hostLive apiHost = iota
	hostMain
	hostPassport
	hostWWW
)

func (c *Client) base(h apiHost) string {
	switch h {
	case hostMain:
		return c.ep.Main
	case hostPassport:
		return c.ep.Passport
	case hostWWW:
		return c.ep.WWW
	}
	return c.ep.Live
}

// request is one call to an API host.
type request struct {
	method   string // default GET
	host     apiHost
	path     string
	query    string     // already encoded
	form     url.Values // POST body, sent form-encoded
	endpoint string     // names the call in errors
	as       sendAs
	creds    *Credentials // for sendExplicit
	okCodes  []int        // non-zero codes that still carry data
	accept   string       // default JSON
}

// answer is what came back: the status, headers (Set-Cookie among them)
// and body, and the login generation the request carried.
type answer struct {
	status int
	header http.Header
	body   []byte
	gen    uint64
}

// send makes one request with the browser's headers and the cookies r
// calls for. Errors name the endpoint and never quote the URL's query,
// where csrf tokens and QR keys travel.
func (c *Client) send(ctx context.Context, r request) (answer, error) {
	// The wait for the budget is not part of the request's timeout: a
	// patient call may wait minutes at start-up, and that is not a
	// failure of Bilibili's.
	if err := c.budget.wait(ctx); err != nil {
		return answer{}, fmt.Errorf("%s: waiting for the request budget: %w", r.endpoint, err)
	}
	if err := admitted(ctx); err != nil {
		return answer{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := c.base(r.host) + r.path
	if r.query != "" {
		u += "?" + r.query
	}
	method := cmp.Or(r.method, http.MethodGet)
	var body io.Reader
	if r.form != nil {
		body = strings.NewReader(r.form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return answer{}, fmt.Errorf("%s: bad request URL", r.endpoint)
	}
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("Referer", referer)
	req.Header.Set("Origin", origin)
	req.Header.Set("Accept", cmp.Or(r.accept, "application/json, text/plain, */*"))
	if r.form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	ck, gen := c.cookiesFor(r.as, r.creds)
	if ck != "" {
		req.Header.Set("Cookie", ck)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s: %w", r.endpoint, withoutQuery(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return answer{}, fmt.Errorf("%s: read answer: %w", r.endpoint, withoutQuery(err))
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: raw, gen: gen}, nil
}

// withoutQuery returns err with the URL of a *url.Error cut to scheme,
// host and path (and the long correspond path to its prefix), keeping the
// error's type and what it wraps.
func withoutQuery(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	cut := ""
	if u, perr := url.Parse(ue.URL); perr == nil {
		u.RawQuery, u.ForceQuery, u.Fragment, u.User = "", false, "", nil
		long := strings.HasPrefix(u.Path, correspondPrefix)
		if long {
			u.Path, u.RawPath = correspondPrefix, ""
		}
		cut = u.String()
		if long {
			cut += "…"
		}
	}
	return &url.Error{Op: ue.Op, URL: cut, Err: ue.Err}
}

// call sends r and decodes the envelope. Non-zero codes become *APIError,
// except those in r.okCodes, which some endpoints use for answers that
// still carry data. A -101 to a request that carried the current login is
// reported to OnLoggedOut, whether or not r expects it.
func (c *Client) call(ctx context.Context, r request) (envelope, http.Header, error) {
	a, err := c.send(ctx, r)
	if err != nil {
		return envelope{}, nil, err
	}
	var env envelope
	jsonErr := json.Unmarshal(a.body, &env)
	if jsonErr == nil && env.Code == codeNotLoggedIn {
		c.noteLoggedOut(a.gen)
	}
	if a.status != http.StatusOK {
		apiErr := &APIError{Endpoint: r.endpoint, HTTPStatus: a.status, Message: fmt.Sprintf("%d %s", a.status, http.StatusText(a.status))}
		if jsonErr == nil && env.Code != 0 {
			apiErr.Code, apiErr.Message = env.Code, env.message()
		}
		return envelope{}, a.header, apiErr
	}
	if jsonErr != nil {
		return envelope{}, a.header, fmt.Errorf("%s: %w: %v", r.endpoint, ErrProtocol, jsonErr)
	}
	if env.Code != 0 && !containsInt(r.okCodes, env.Code) {
		return env, a.header, &APIError{Endpoint: r.endpoint, HTTPStatus: a.status, Code: env.Code, Message: env.message()}
	}
	return env, a.header, nil
}

// get sends a GET with the current cookies to an API host; see call.
func (c *Client) get(ctx context.Context, host apiHost, path, query, endpoint string, okCodes ...int) (envelope, error) {
	env, _, err := c.call(ctx, request{host: host, path: path, query: query, endpoint: endpoint, okCodes: okCodes})
	return env, err
}

// post sends a form POST to an API host with the cookies of as (the
// current ones if nil), with the headers a GET has; see call. It returns
// the answer's headers too, for Set-Cookie.
func (c *Client) post(ctx context.Context, host apiHost, path string, form url.Values, endpoint string, as *Credentials) (envelope, http.Header, error) {
	r := request{method: http.MethodPost, host: host, path: path, form: form, endpoint: endpoint}
	if as != nil {
		r.as, r.creds = sendExplicit, as
	}
	return c.call(ctx, r)
}

func (e envelope) message() string {
	if e.Message != "" {
		return e.Message
	}
	return e.Msg
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// decodeData decodes an envelope's data, reporting a shape Bilibili no
// longer sends as ErrProtocol.
func decodeData(env envelope, endpoint string, v any) error {
	if err := json.Unmarshal(env.Data, v); err != nil {
		return fmt.Errorf("%s: %w: %v", endpoint, ErrProtocol, err)
	}
	return nil
}

// Buvid3 returns the buvid3 device id Bilibili wants as a cookie, fetching
// it once from /x/frontend/finger/spi (unless the configured cookie has
// one). Every later request carries it, logged in or not.
func (c *Client) Buvid3(ctx context.Context) (string, error) {
	c.mu.Lock()
	b := c.buvid
	c.mu.Unlock()
	if b != "" {
		return b, nil
	}
	c.buvidFetch.Lock()
	defer c.buvidFetch.Unlock()
	c.mu.Lock()
	b = c.buvid
	c.mu.Unlock()
	if b != "" {
		return b, nil // fetched while this call waited
	}
	env, err := c.get(ctx, hostMain, "/x/frontend/finger/spi", "", "spi")
	if err != nil {
		return "", err
	}
	var data struct {
		B3 string `json:"b_3"`
	}
	if err := decodeData(env, "spi", &data); err != nil {
		return "", err
	}
	if data.B3 == "" {
		return "", fmt.Errorf("spi: %w: empty b_3", ErrProtocol)
	}
	c.mu.Lock()
	c.buvid = data.B3
	c.mu.Unlock()
	return data.B3, nil
}

// wbiMixinKey returns the cached WBI mixin key, fetching the keys from nav
// when there is none or it is old.
func (c *Client) wbiMixinKey(ctx context.Context) (string, error) {
	c.mu.Lock()
	key, fetched := c.wbiKey, c.wbiFetch
	c.mu.Unlock()
	if key != "" && time.Since(fetched) < wbiKeyTTL {
		return key, nil
	}
	c.wbiFetching.Lock()
	defer c.wbiFetching.Unlock()
	c.mu.Lock()
	key, fetched = c.wbiKey, c.wbiFetch
	c.mu.Unlock()
	if key != "" && time.Since(fetched) < wbiKeyTTL {
		return key, nil // fetched while this call waited
	}
	nav, err := c.nav(ctx, nil)
	if err != nil {
		return "", err
	}
	if nav.mixin == "" {
		return "", fmt.Errorf("nav: %w: WBI keys %q and %q are not 32 characters", ErrProtocol, nav.img, nav.sub)
	}
	return nav.mixin, nil
}

// dropWBIKey forgets the WBI key after a -352, so the next call fetches
// fresh keys: stale keys are the commonest reason for a rejected signature.
func (c *Client) dropWBIKey() {
	c.mu.Lock()
	c.wbiKey = ""
	c.mu.Unlock()
}
