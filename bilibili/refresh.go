package bilibili

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// refreshKeyPEM is the public key Bilibili's website encrypts the
// correspond path of a cookie refresh with (from the website's
// wasm_rsa_encrypt module, as published in bilibili-API-collect's
// docs/login/cookie_refresh.md).
const refreshKeyPEM = `-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDLgd2OAkcGVtoE3ThUREbio0Eg
Uc/prcajMKXvkCKFCWhJYJcLkcM2DKKcSeFpD/j6Boy538YXnR6VhcuUJOhH2x71
nzPjfdTcqMz7djHum0qSZA0AyCBDABUqCrfNgCiJ00Ra7GmRj+YCK1NJEuewlb40
JNrRuoEUXpabUzGB8QIDAQAB
-----END PUBLIC KEY-----`

// bilibiliRefreshKey returns Bilibili's refresh key, parsed once.
var bilibiliRefreshKey = sync.OnceValue(func() *rsa.PublicKey {
	block, _ := pem.Decode([]byte(refreshKeyPEM))
	if block == nil {
		panic("bilibili: refresh key PEM does not decode")
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		panic("bilibili: refresh key: " + err.Error())
	}
	return key.(*rsa.PublicKey)
})

// The passport paths of a cookie refresh.
const (
	cookieInfoPath     = "/x/passport-login/web/cookie/info"
	cookieRefreshPath  = "/x/passport-login/web/cookie/refresh"
	confirmRefreshPath = "/x/passport-login/web/confirm/refresh"
	correspondPrefix   = "/correspond/1/"
)

// CookieInfo asks Bilibili whether the current login's cookies should be
// refreshed, and its clock in milliseconds. It returns an error wrapping
// ErrLoggedOut (and tells OnLoggedOut) if the session is no longer valid.
func (c *Client) CookieInfo(ctx context.Context) (refresh bool, timestamp int64, err error) {
	const endpoint = "cookie/info"
	query := ""
	if csrf := c.currentCSRF(); csrf != "" {
		query = "csrf=" + url.QueryEscape(csrf)
	}
	env, err := c.get(ctx, hostPassport, cookieInfoPath, query, endpoint)
	if err != nil {
		return false, 0, err
	}
	var data struct {
		Refresh   bool  `json:"refresh"`
		Timestamp int64 `json:"timestamp"`
	}
	if err := decodeData(env, endpoint, &data); err != nil {
		return false, 0, err
	}
	return data.Refresh, data.Timestamp, nil
}

// currentCSRF is the bili_jct requests carry now: the login's, else the
// configured cookie's.
func (c *Client) currentCSRF() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.login != nil {
		return c.login.CSRF()
	}
	for _, ck := range parseCookies(c.cookie) {
		if ck.Name == "bili_jct" {
			return ck.Value
		}
	}
	return ""
}

// correspondPath returns the path segment of the correspond page for a
// refresh at ts (Unix milliseconds): the lowercase hex of RSA-OAEP with
// SHA-256 over "refresh_<ts>" under key. OAEP is randomized, so two calls
// differ; 1024-bit keys give 256 hex digits.
func correspondPath(key *rsa.PublicKey, ts int64) (string, error) {
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, key, []byte("refresh_"+strconv.FormatInt(ts, 10)), nil)
	if err != nil {
		return "", fmt.Errorf("correspond path: %w", err)
	}
	return hex.EncodeToString(ct), nil
}

// Refresh renews cur, a login whose CookieInfo says refresh, the way the
// website does, and returns the new credentials, which the caller must
// store: from the refresh on, only their refresh token renews the session.
// It does not ask CookieInfo itself. The steps, and what a failure at each
// leaves:
//
//  1. GET www.bilibili.com/correspond/1/<path> with cur's cookies, for the
//     refresh_csrf in the page. A failure (an *APIError with HTTP 404 when
//     Bilibili does not accept the path or the session) changes nothing:
//     cur still works, and the client keeps it.
//  2. POST cookie/refresh with cur's cookies and refresh token, for new
//     cookies (Set-Cookie) and a new refresh token. If Bilibili refuses
//     (-101 logged out, -111 csrf, 86095 refresh_csrf or refresh token not
//     matching) nothing has changed either. If the answer is lost on the
//     way, Bilibili may have issued new cookies nobody got; cur still works
//     (it is never confirmed), but its refresh token may be spent, and the
//     next refresh would then fail with 86095 until a new QR login.
//  3. The new cookies work from here. If cur is the client's login, the
//     client switches to them now (unless Logout or SetLogin came
//     meanwhile).
//  4. POST confirm/refresh with the new cookies, the new bili_jct as csrf
//     and cur's refresh token, which retires cur's session. If this fails,
//     Refresh returns the new credentials together with an error wrapping
//     ErrRefreshNotConfirmed: store them anyway (cur keeps working until
//     Bilibili retires it), and call ConfirmRefresh again later if wanted.
//
// Errors name the step and Bilibili's code, never a cookie or token.
func (c *Client) Refresh(ctx context.Context, cur Credentials) (Credentials, error) {
	switch {
	case cur.IsZero():
		return Credentials{}, errors.New("refresh: the credentials have no SESSDATA")
	case cur.CSRF() == "":
		return Credentials{}, errors.New("refresh: the credentials have no bili_jct")
	case cur.RefreshToken == "":
		return Credentials{}, errors.New("refresh: the credentials have no refresh token")
	}
	path, err := correspondPath(c.refreshKey, c.now().UnixMilli())
	if err != nil {
		return Credentials{}, fmt.Errorf("refresh: %w", err)
	}
	refreshCSRF, err := c.refreshCSRF(ctx, cur, path)
	if err != nil {
		return Credentials{}, fmt.Errorf("refresh: %w", err)
	}
	next, err := c.refreshCookie(ctx, cur, refreshCSRF)
	if err != nil {
		return Credentials{}, fmt.Errorf("refresh: %w", err)
	}
	c.replaceLogin(cur, next)
	if err := c.ConfirmRefresh(ctx, next, cur.RefreshToken); err != nil {
		return next, fmt.Errorf("refresh: %w: %w", ErrRefreshNotConfirmed, err)
	}
	return next, nil
}

// refreshCSRF fetches the correspond page with cur's cookies and returns
// the refresh_csrf in its <div id="1-name">.
func (c *Client) refreshCSRF(ctx context.Context, cur Credentials, path string) (string, error) {
	const endpoint = "correspond"
	a, err := c.send(ctx, request{host: hostWWW, path: correspondPrefix + path, endpoint: endpoint,
		as: sendExplicit, creds: &cur, accept: "text/html,application/xhtml+xml,*/*"})
	if err != nil {
		return "", err
	}
	if a.status != http.StatusOK {
		return "", &APIError{Endpoint: endpoint, HTTPStatus: a.status, Message: fmt.Sprintf("%d %s", a.status, http.StatusText(a.status))}
	}
	token := refreshCSRFFromPage(string(a.body))
	if token == "" {
		return "", fmt.Errorf("%s: %w: no refresh_csrf in the page", endpoint, ErrProtocol)
	}
	return token, nil
}

// refreshCSRFFromPage returns the text of the page's element with id
// 1-name, or "".
func refreshCSRFFromPage(page string) string {
	for _, marker := range []string{`id="1-name"`, `id='1-name'`} {
		i := strings.Index(page, marker)
		if i < 0 {
			continue
		}
		rest := page[i+len(marker):]
		open := strings.IndexByte(rest, '>')
		if open < 0 {
			return ""
		}
		rest = rest[open+1:]
		end := strings.IndexByte(rest, '<')
		if end < 0 {
			return ""
		}
		return strings.TrimSpace(html.UnescapeString(rest[:end]))
	}
	return ""
}

// refreshCookie posts cookie/refresh and returns cur with the new cookies
// and refresh token.
func (c *Client) refreshCookie(ctx context.Context, cur Credentials, refreshCSRF string) (Credentials, error) {
	const endpoint = "cookie/refresh"
	form := url.Values{
		"csrf":          {cur.CSRF()},
		"refresh_csrf":  {refreshCSRF},
		"source":        {"main_web"},
		"refresh_token": {cur.RefreshToken},
	}
	env, header, err := c.post(ctx, hostPassport, cookieRefreshPath, form, endpoint, &cur)
	if err != nil {
		return Credentials{}, err
	}
	var data struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := decodeData(env, endpoint, &data); err != nil {
		return Credentials{}, err
	}
	next := cur.withSetCookies(header)
	next.RefreshToken = data.RefreshToken
	switch {
	case data.RefreshToken == "":
		return Credentials{}, fmt.Errorf("%s: %w: no refresh_token", endpoint, ErrProtocol)
	case next.sameSession(cur) || next.CSRF() == cur.CSRF():
		return Credentials{}, fmt.Errorf("%s: %w: no new SESSDATA and bili_jct in Set-Cookie", endpoint, ErrProtocol)
	}
	return next, nil
}

// ConfirmRefresh tells Bilibili that the refreshed credentials next are in
// use, which retires the session whose refresh token was oldRefreshToken.
// Refresh calls it; call it again only after an ErrRefreshNotConfirmed.
func (c *Client) ConfirmRefresh(ctx context.Context, next Credentials, oldRefreshToken string) error {
	const endpoint = "confirm/refresh"
	form := url.Values{"csrf": {next.CSRF()}, "refresh_token": {oldRefreshToken}}
	_, _, err := c.post(ctx, hostPassport, confirmRefreshPath, form, endpoint, &next)
	return err
}
