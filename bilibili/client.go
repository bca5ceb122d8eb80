package bilibili

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
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

// Endpoints are the base URLs of Bilibili's two API hosts.
type Endpoints struct {
	Live string // api.live.bilibili.com: rooms, play URLs, danmaku servers
	Main string // api.bilibili.com: WBI keys, buvid3
}

// DefaultEndpoints returns Bilibili's real hosts.
func DefaultEndpoints() Endpoints {
	return Endpoints{Live: "https://api.live.bilibili.com", Main: "https://api.bilibili.com"}
}

// SingleEndpoint sends both hosts' requests to base, as BILIBILI_API_URL
// does for the simulator.
func SingleEndpoint(base string) Endpoints {
	base = strings.TrimRight(base, "/")
	return Endpoints{Live: base, Main: base}
}

// Options configure a Client.
type Options struct {
	Endpoints Endpoints
	Cookie    string        // BILIBILI_COOKIE; never logged
	Timeout   time.Duration // per request; default 10 s
}

// Client talks to Bilibili's HTTP API as the website does. It is safe for
// concurrent use; create one and share it.
type Client struct {
	ep      Endpoints
	hc      *http.Client
	log     *slog.Logger
	timeout time.Duration
	cookie  string
	uid     int64
	jar     *cookiejar.Jar
	jarURL  *url.URL // cookies are kept for the live host's URL

	mu       sync.Mutex
	buvid    string
	wbiKey   string
	wbiFetch time.Time
}

// wbiKeyTTL is how long WBI keys are trusted; the website refreshes them
// daily, so a few hours keeps well inside that.
const wbiKeyTTL = 4 * time.Hour

// NewClient returns a Client using hc for every request. A nil hc uses
// http.DefaultClient; a nil logger discards.
func NewClient(opts Options, hc *http.Client, logger *slog.Logger) *Client {
	if opts.Endpoints == (Endpoints{}) {
		opts.Endpoints = DefaultEndpoints()
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	jar, _ := cookiejar.New(nil) // never fails without options
	live, err := url.Parse(opts.Endpoints.Live)
	if err != nil {
		live, _ = url.Parse(DefaultEndpoints().Live)
	}
	c := &Client{
		ep: opts.Endpoints, hc: hc, log: logger, timeout: opts.Timeout,
		cookie: strings.TrimSpace(opts.Cookie), jar: jar, jarURL: live,
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

// UID returns the logged-in user id from the cookie, or 0.
func (c *Client) UID() int64 { return c.uid }

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

// cookieHeader joins the configured cookie with the jar's (buvid3).
func (c *Client) cookieHeader() string {
	parts := []string{}
	if c.cookie != "" {
		parts = append(parts, c.cookie)
	}
	for _, ck := range c.jar.Cookies(c.jarURL) {
		if !strings.Contains(c.cookie, ck.Name+"=") {
			parts = append(parts, ck.Name+"="+ck.Value)
		}
	}
	return strings.Join(parts, "; ")
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

// get sends a GET to base+path with query (already encoded) and decodes the
// envelope. Non-zero codes become *APIError, except those listed in okCodes,
// which some endpoints use for answers that still carry data.
func (c *Client) get(ctx context.Context, base, path, query, endpoint string, okCodes ...int) (envelope, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := base + path
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return envelope{}, fmt.Errorf("%s: %w", endpoint, err)
	}
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("Referer", referer)
	req.Header.Set("Origin", origin)
	req.Header.Set("Accept", "application/json, text/plain, */*")
	if ck := c.cookieHeader(); ck != "" {
		req.Header.Set("Cookie", ck)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return envelope{}, fmt.Errorf("%s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return envelope{}, fmt.Errorf("%s: read answer: %w", endpoint, err)
	}
	if resp.StatusCode != http.StatusOK {
		apiErr := &APIError{Endpoint: endpoint, HTTPStatus: resp.StatusCode, Message: resp.Status}
		var env envelope
		if json.Unmarshal(body, &env) == nil && env.Code != 0 {
			apiErr.Code, apiErr.Message = env.Code, env.message()
		}
		return envelope{}, apiErr
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return envelope{}, fmt.Errorf("%s: %w: %v", endpoint, ErrProtocol, err)
	}
	if env.Code != 0 && !containsInt(okCodes, env.Code) {
		return env, &APIError{Endpoint: endpoint, HTTPStatus: resp.StatusCode, Code: env.Code, Message: env.message()}
	}
	return env, nil
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
// it once from /x/frontend/finger/spi and keeping it in the cookie jar.
func (c *Client) Buvid3(ctx context.Context) (string, error) {
	c.mu.Lock()
	b := c.buvid
	c.mu.Unlock()
	if b != "" {
		return b, nil
	}
	env, err := c.get(ctx, c.ep.Main, "/x/frontend/finger/spi", "", "spi")
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
	c.jar.SetCookies(c.jarURL, []*http.Cookie{{Name: "buvid3", Value: data.B3, Path: "/"}})
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
	// -101 (logged out) still carries the keys.
	env, err := c.get(ctx, c.ep.Main, "/x/web-interface/nav", "", "nav", -101)
	if err != nil {
		return "", err
	}
	var data struct {
		WbiImg struct {
			ImgURL string `json:"img_url"`
			SubURL string `json:"sub_url"`
		} `json:"wbi_img"`
	}
	if err := decodeData(env, "nav", &data); err != nil {
		return "", err
	}
	img, sub := WBIKeyFromURL(data.WbiImg.ImgURL), WBIKeyFromURL(data.WbiImg.SubURL)
	if len(img) != 32 || len(sub) != 32 {
		return "", fmt.Errorf("nav: %w: WBI keys %q and %q are not 32 characters", ErrProtocol, img, sub)
	}
	key = WBIMixinKey(img, sub)
	c.mu.Lock()
	c.wbiKey, c.wbiFetch = key, time.Now()
	c.mu.Unlock()
	return key, nil
}

// dropWBIKey forgets the WBI key after a -352, so the next call fetches
// fresh keys: stale keys are the commonest reason for a rejected signature.
func (c *Client) dropWBIKey() {
	c.mu.Lock()
	c.wbiKey = ""
	c.mu.Unlock()
}
