package bilibili

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Credentials are a logged-in web session: the cookies Bilibili set when it
// was made (SESSDATA, bili_jct, DedeUserID, DedeUserID__ckMd5, sid and
// whatever else came with them) and the refresh token that renews them.
// They are secrets: printing them with fmt or slog shows only the user id
// and the cookie names, but encoding/json writes every value, for storage.
type Credentials struct {
	Cookies      []Cookie // in the order Bilibili set them
	RefreshToken string   // the website's ac_time_value; Refresh needs it
}

// Cookie is one cookie of a session. Expires is zero for a session cookie.
type Cookie struct {
	Name, Value string
	Expires     time.Time
}

// String names the cookie without its value.
func (c Cookie) String() string { return c.Name + "=…" }

// GoString is String, so that %#v does not print the value either.
func (c Cookie) GoString() string { return c.String() }

// LogValue keeps the value out of slog records.
func (c Cookie) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Value returns the named cookie's value, or "".
func (c Credentials) Value(name string) string {
	for _, ck := range c.Cookies {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// UID returns the account's mid from DedeUserID, or 0.
func (c Credentials) UID() int64 {
	id, _ := strconv.ParseInt(c.Value("DedeUserID"), 10, 64)
	return id
}

// CSRF returns bili_jct, the token Bilibili's POSTs and cookie/info take as
// csrf.
func (c Credentials) CSRF() string { return c.Value("bili_jct") }

// Expires returns when SESSDATA expires, or the zero time if it did not
// say.
func (c Credentials) Expires() time.Time {
	for _, ck := range c.Cookies {
		if ck.Name == "SESSDATA" {
			return ck.Expires
		}
	}
	return time.Time{}
}

// IsZero reports whether the credentials hold no session (no SESSDATA).
func (c Credentials) IsZero() bool { return c.Value("SESSDATA") == "" }

// String describes the credentials without any secret.
func (c Credentials) String() string {
	names := make([]string, len(c.Cookies))
	for i, ck := range c.Cookies {
		names[i] = ck.Name
	}
	return fmt.Sprintf("bilibili login of uid %d (cookies %s)", c.UID(), strings.Join(names, ", "))
}

// GoString is String, so that %#v does not print the values either.
func (c Credentials) GoString() string { return c.String() }

// LogValue keeps the values out of slog records.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("uid", c.UID()), slog.Int("cookies", len(c.Cookies)))
}

// header returns the credentials as a Cookie header.
func (c Credentials) header() string {
	parts := make([]string, 0, len(c.Cookies))
	for _, ck := range c.Cookies {
		parts = append(parts, ck.Name+"="+ck.Value)
	}
	return strings.Join(parts, "; ")
}

// sameSession reports whether two credentials are the same session.
func (c Credentials) sameSession(o Credentials) bool {
	s := c.Value("SESSDATA")
	return s != "" && s == o.Value("SESSDATA")
}

func (c Credentials) clone() Credentials {
	c.Cookies = append([]Cookie(nil), c.Cookies...)
	return c
}

// withSetCookies returns c with the cookies of Set-Cookie headers put in:
// a name already there takes the new value, new names are added.
func (c Credentials) withSetCookies(h http.Header) Credentials {
	out := c.clone()
	for _, line := range h.Values("Set-Cookie") {
		ck, err := http.ParseSetCookie(line)
		if err != nil || ck.Value == "" {
			continue
		}
		exp := ck.Expires
		if ck.MaxAge > 0 {
			exp = time.Now().Add(time.Duration(ck.MaxAge) * time.Second)
		}
		set := Cookie{Name: ck.Name, Value: ck.Value, Expires: exp.UTC()}
		replaced := false
		for i := range out.Cookies {
			if out.Cookies[i].Name == set.Name {
				out.Cookies[i], replaced = set, true
			}
		}
		if !replaced {
			out.Cookies = append(out.Cookies, set)
		}
	}
	return out
}

// SetLogin makes every later request carry cred's cookies instead of the
// configured BILIBILI_COOKIE (buvid3 is still sent), and arms OnLoggedOut
// for this login.
func (c *Client) SetLogin(cred Credentials) {
	cred = cred.clone()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.login = &cred
	c.loginGen++
	c.reported = false
}

// Logout forgets the login set with SetLogin; requests carry the
// configured BILIBILI_COOKIE again. It does not tell Bilibili.
func (c *Client) Logout() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.login = nil
	c.loginGen++
}

// Login returns the login requests carry now, and false if none is set.
// After a Refresh of it, that is the refreshed one.
func (c *Client) Login() (Credentials, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.login == nil {
		return Credentials{}, false
	}
	return c.login.clone(), true
}

// replaceLogin switches the client from old to next if old is still its
// login, so that a Logout or SetLogin made meanwhile stands.
func (c *Client) replaceLogin(old, next Credentials) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.login == nil || !c.login.sameSession(old) {
		return false
	}
	next = next.clone()
	c.login = &next
	c.loginGen++
	c.reported = false
	return true
}

// noteLoggedOut calls OnLoggedOut if a -101 came to a request that carried
// login generation gen, gen is still the current login, and it has not
// been reported yet.
func (c *Client) noteLoggedOut(gen uint64) {
	c.mu.Lock()
	report := gen != 0 && gen == c.loginGen && c.login != nil && !c.reported
	if report {
		c.reported = true
	}
	cb := c.onLoggedOut
	c.mu.Unlock()
	if report {
		c.log.Info("bilibili says the login has expired", slog.Int64("uid", c.UID()))
		if cb != nil {
			cb()
		}
	}
}

// Account is who nav says the cookies belong to.
type Account struct {
	IsLogin bool
	Uname   string
	Mid     int64
}

const navPath = "/x/web-interface/nav"

// navAnswer is what one nav call told: the account and the WBI mixin key
// ("" if the keys were not of the usual shape).
type navAnswer struct {
	account  Account
	img, sub string
	mixin    string
}

// nav asks /x/web-interface/nav, which answers -101 with the WBI keys when
// the cookies are not logged in, and caches the WBI key it hands out.
// With as set, it asks with those cookies instead of the current ones.
func (c *Client) nav(ctx context.Context, as *Credentials) (navAnswer, error) {
	r := request{host: hostMain, path: navPath, endpoint: "nav", okCodes: []int{codeNotLoggedIn}}
	if as != nil {
		r.as, r.creds = sendExplicit, as
	}
	env, _, err := c.call(ctx, r)
	if err != nil {
		return navAnswer{}, err
	}
	var data struct {
		IsLogin bool   `json:"isLogin"`
		Uname   string `json:"uname"`
		Mid     int64  `json:"mid"`
		WbiImg  struct {
			ImgURL string `json:"img_url"`
			SubURL string `json:"sub_url"`
		} `json:"wbi_img"`
	}
	if err := decodeData(env, "nav", &data); err != nil {
		return navAnswer{}, err
	}
	a := navAnswer{img: WBIKeyFromURL(data.WbiImg.ImgURL), sub: WBIKeyFromURL(data.WbiImg.SubURL)}
	if env.Code == 0 && data.IsLogin {
		a.account = Account{IsLogin: true, Uname: data.Uname, Mid: data.Mid}
	}
	if len(a.img) == 32 && len(a.sub) == 32 {
		a.mixin = WBIMixinKey(a.img, a.sub)
		c.mu.Lock()
		c.wbiKey, c.wbiFetch = a.mixin, time.Now()
		c.mu.Unlock()
	}
	return a, nil
}

// Nav returns the account the client's cookies are logged in as. Logged
// out is an answer, not an error: IsLogin is false (Bilibili's -101). A
// -101 while a login is set also reaches OnLoggedOut, since then the
// session has ended.
func (c *Client) Nav(ctx context.Context) (Account, error) {
	a, err := c.nav(ctx, nil)
	if err != nil {
		return Account{}, err
	}
	return a.account, nil
}

// NavAs is Nav with cred's cookies, leaving the client's login as it is:
// it checks a new login before it is put in use. A -101 to cred says only
// that cred is not logged in; it reaches OnLoggedOut only if cred is the
// client's current login.
func (c *Client) NavAs(ctx context.Context, cred Credentials) (Account, error) {
	a, err := c.nav(ctx, &cred)
	if err != nil {
		return Account{}, err
	}
	return a.account, nil
}

// QRCode is a login QR code: the URL to encode in the image, and the key
// to poll with. The key is good for 180 seconds.
type QRCode struct {
	URL string
	Key string
}

// QRState is where a QR login stands.
type QRState int

// The states of a QR login, from the poll's data.code.
const (
	QRWaiting   QRState = iota + 1 // 86101: not scanned yet
	QRScanned                      // 86090: scanned, not yet confirmed on the phone
	QRExpired                      // 86038: expired or used up; generate a new one
	QRConfirmed                    // 0: logged in; the poll carries the credentials
)

// Bilibili's poll codes for the states.
const (
	codeQRWaiting = 86101
	codeQRScanned = 86090
	codeQRExpired = 86038
)

func (s QRState) String() string {
	switch s {
	case QRWaiting:
		return "waiting for a scan"
	case QRScanned:
		return "scanned, waiting for confirmation"
	case QRExpired:
		return "expired"
	case QRConfirmed:
		return "confirmed"
	}
	return "QRState(" + strconv.Itoa(int(s)) + ")"
}

// QRPoll is one poll's answer.
type QRPoll struct {
	State       QRState
	Message     string      // Bilibili's words for the state, e.g. 未扫码
	Credentials Credentials // when State is QRConfirmed
}

// QRLogin asks Bilibili for a login QR code. It is sent without the
// current login's cookies, since it starts a new session. It returns an
// *APIError if Bilibili refuses, and ErrProtocol for an answer without a
// URL or key.
func (c *Client) QRLogin(ctx context.Context) (QRCode, error) {
	const endpoint = "qrcode/generate"
	env, _, err := c.call(ctx, request{host: hostPassport, path: "/x/passport-login/web/qrcode/generate", endpoint: endpoint, as: sendGuest})
	if err != nil {
		return QRCode{}, err
	}
	var data struct {
		URL string `json:"url"`
		Key string `json:"qrcode_key"`
	}
	if err := decodeData(env, endpoint, &data); err != nil {
		return QRCode{}, err
	}
	if data.URL == "" || data.Key == "" {
		return QRCode{}, fmt.Errorf("%s: %w: no url or qrcode_key", endpoint, ErrProtocol)
	}
	return QRCode{URL: data.URL, Key: data.Key}, nil
}

// PollQR asks how the QR login with key stands. Once confirmed, the answer
// carries the session's cookies (from Set-Cookie; data.url repeats some of
// them in its query, which is not used) and refresh token in Credentials;
// the caller sets them with SetLogin and keeps them. Poll every second or
// two until QRConfirmed or QRExpired. It returns ErrProtocol for a code it
// does not know or a confirmation without SESSDATA.
func (c *Client) PollQR(ctx context.Context, key string) (QRPoll, error) {
	const endpoint = "qrcode/poll"
	env, header, err := c.call(ctx, request{host: hostPassport, path: "/x/passport-login/web/qrcode/poll",
		query: "qrcode_key=" + url.QueryEscape(key), endpoint: endpoint, as: sendGuest})
	if err != nil {
		return QRPoll{}, err
	}
	var data struct {
		Code         int    `json:"code"`
		Message      string `json:"message"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := decodeData(env, endpoint, &data); err != nil {
		return QRPoll{}, err
	}
	p := QRPoll{Message: data.Message}
	switch data.Code {
	case codeQRWaiting:
		p.State = QRWaiting
	case codeQRScanned:
		p.State = QRScanned
	case codeQRExpired:
		p.State = QRExpired
	case 0:
		p.State = QRConfirmed
		p.Credentials = Credentials{RefreshToken: data.RefreshToken}.withSetCookies(header)
		if p.Credentials.IsZero() {
			return QRPoll{}, fmt.Errorf("%s: %w: confirmed without a SESSDATA cookie", endpoint, ErrProtocol)
		}
	default:
		return QRPoll{}, fmt.Errorf("%s: %w: data.code %d", endpoint, ErrProtocol, data.Code)
	}
	return p, nil
}
