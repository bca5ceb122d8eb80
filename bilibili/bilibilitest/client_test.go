package bilibilitest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"roomrec/bilibili"
	"roomrec/bilibili/danmaku"
	"roomrec/recording/flv"
)

// The tests talk to the simulator the way a real client talks to Bilibili:
// plain HTTP, gorilla websocket, the danmaku codec and the FLV tag reader.

// envelope is the wrapper of every API answer; Data stays raw so a test can
// check its JSON kind (60004 answers an array).
type envelope struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

// getJSON GETs url with an optional buvid3 cookie and decodes the envelope.
func getJSON(t *testing.T, u, buvid string) (int, envelope) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Referer", "https://live.bilibili.com/")
	if buvid != "" {
		req.AddCookie(&http.Cookie{Name: "buvid3", Value: buvid})
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env envelope
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatalf("GET %s: decode: %v", u, err)
	}
	return resp.StatusCode, env
}

// getData GETs url, requires code 0 (or -101 for nav) and decodes data into v.
func getData(t *testing.T, u string, v any) {
	t.Helper()
	status, env := getJSON(t, u, "")
	if status != http.StatusOK || (env.Code != 0 && env.Code != -101) {
		t.Fatalf("GET %s: status %d code %d, want 200 and 0", u, status, env.Code)
	}
	if err := json.Unmarshal(env.Data, v); err != nil {
		t.Fatalf("GET %s: decode data: %v", u, err)
	}
}

// buvid3 asks spi for a buvid3, as a client does once.
func buvid3(t *testing.T, s *Server) string {
	t.Helper()
	var spi struct {
		B3 string `json:"b_3"`
	}
	getData(t, s.URL()+PathSpi, &spi)
	return spi.B3
}

// mixinKey builds the WBI mixin key from the keys nav hands out.
func mixinKey(t *testing.T, s *Server) string {
	t.Helper()
	var nav struct {
		WBI struct {
			Img string `json:"img_url"`
			Sub string `json:"sub_url"`
		} `json:"wbi_img"`
	}
	getData(t, s.URL()+PathNav, &nav)
	return bilibili.WBIMixinKey(bilibili.WBIKeyFromURL(nav.WBI.Img), bilibili.WBIKeyFromURL(nav.WBI.Sub))
}

// danmuInfoURL returns a getDanmuInfo URL for room signed with key.
func danmuInfoURL(s *Server, room int64, key string) string {
	q := url.Values{"id": {fmt.Sprint(room)}, "type": {"0"}, "web_location": {"444.8"}}
	return s.URL() + PathDanmuInfo + "?" + bilibili.SignWBI(q, key, time.Now())
}

// danmakuToken does what a client does before the websocket: buvid3, WBI
// keys, signed getDanmuInfo. It returns the token.
func danmakuToken(t *testing.T, s *Server, room int64) (token, buvid string) {
	t.Helper()
	buvid = buvid3(t, s)
	status, env := getJSON(t, danmuInfoURL(s, room, mixinKey(t, s)), buvid)
	if status != http.StatusOK || env.Code != 0 {
		t.Fatalf("getDanmuInfo: status %d code %d, want 200 and 0", status, env.Code)
	}
	var info struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(env.Data, &info); err != nil {
		t.Fatal(err)
	}
	return info.Token, buvid
}

// wsClient is a danmaku websocket client that keeps every frame's version.
type wsClient struct {
	t       *testing.T
	conn    *websocket.Conn
	dec     danmaku.Decoder
	pending []received // packets read but not yet looked at by nextMessage
}

// dialDanmaku opens /sub and sends an auth packet for room with token.
func dialDanmaku(t *testing.T, s *Server, room int64, token string) *wsClient {
	t.Helper()
	c := dialDanmakuRaw(t, s)
	auth := fmt.Sprintf(`{"uid":0,"roomid":%d,"protover":3,"platform":"web","type":2,"key":%q,"buvid":"x"}`, room, token)
	c.send(danmaku.Packet{Version: danmaku.VersionInt, Op: danmaku.OpAuth, Seq: 1, Body: []byte(auth)})
	return c
}

// dialDanmakuRaw opens /sub and sends nothing.
func dialDanmakuRaw(t *testing.T, s *Server) *wsClient {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(strings.Replace(s.URL(), "http://", "ws://", 1)+"/sub", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &wsClient{t: t, conn: conn}
}

func (c *wsClient) send(p danmaku.Packet) {
	c.t.Helper()
	if err := c.conn.WriteMessage(websocket.BinaryMessage, danmaku.AppendPacket(nil, p)); err != nil {
		c.t.Fatal(err)
	}
}

// received is one packet with the version of the frame that carried it.
type received struct {
	frameVersion danmaku.Version
	danmaku.Packet
}

// readFrame reads one websocket frame and returns its packets, copied.
func (c *wsClient) readFrame(timeout time.Duration) ([]received, error) {
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	_, frame, err := c.conn.ReadMessage()
	if err != nil {
		return nil, err
	}
	if len(frame) < danmaku.HeaderLen {
		return nil, errors.New("short frame")
	}
	outer := danmaku.Version(frame[7])
	var out []received
	err = c.dec.Decode(frame, func(p danmaku.Packet) error {
		p.Body = append([]byte(nil), p.Body...)
		out = append(out, received{outer, p})
		return nil
	})
	return out, err
}

// nextMessage returns the next op-5 message body whose cmd (cut at ':') is
// cmd, skipping others.
func (c *wsClient) nextMessage(cmd string, timeout time.Duration) []byte {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for len(c.pending) > 0 {
			p := c.pending[0]
			c.pending = c.pending[1:]
			if p.Op == danmaku.OpMessage && messageCmd(p.Body) == cmd {
				return p.Body
			}
		}
		ps, err := c.readFrame(time.Until(deadline))
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", cmd, err)
		}
		c.pending = ps
	}
}

func messageCmd(body []byte) string {
	var m struct {
		Cmd string `json:"cmd"`
	}
	json.Unmarshal(body, &m)
	cmd, _, _ := strings.Cut(m.Cmd, ":")
	return cmd
}

// expectAuthOK reads the auth reply and fails unless it is {"code":0}.
func (c *wsClient) expectAuthOK() {
	c.t.Helper()
	if code := c.authReply(); code != 0 {
		c.t.Fatalf("auth reply code %d, want 0", code)
	}
}

func (c *wsClient) authReply() int {
	c.t.Helper()
	ps, err := c.readFrame(2 * time.Second)
	if err != nil || len(ps) != 1 || ps[0].Op != danmaku.OpAuthReply {
		c.t.Fatalf("auth reply: packets %v, err %v; want one op 8", ps, err)
	}
	var r struct {
		Code int `json:"code"`
	}
	if err := json.Unmarshal(ps[0].Body, &r); err != nil {
		c.t.Fatal(err)
	}
	return r.Code
}

// streamURL asks play info for the room's first FLV URL.
func streamURL(t *testing.T, s *Server, room int64) string {
	t.Helper()
	var play struct {
		PlayurlInfo *struct {
			Playurl struct {
				Stream []struct {
					ProtocolName string `json:"protocol_name"`
					Format       []struct {
						FormatName string `json:"format_name"`
						Codec      []struct {
							BaseURL string `json:"base_url"`
							URLInfo []struct {
								Host  string `json:"host"`
								Extra string `json:"extra"`
							} `json:"url_info"`
						} `json:"codec"`
					} `json:"format"`
				} `json:"stream"`
			} `json:"playurl"`
		} `json:"playurl_info"`
	}
	getData(t, fmt.Sprintf("%s%s?room_id=%d&protocol=0,1&format=0,1,2&codec=0,1&qn=10000&platform=web&ptype=8&dolby=5&panorama=1", s.URL(), PathPlayInfo, room), &play)
	if play.PlayurlInfo == nil {
		t.Fatal("playurl_info is null, want a live room's")
	}
	c := play.PlayurlInfo.Playurl.Stream[0].Format[0].Codec[0]
	return c.URLInfo[0].Host + c.BaseURL + c.URLInfo[0].Extra
}

// flvStream is an open stream connection read tag by tag.
type flvStream struct {
	resp *http.Response
	r    *flv.Reader
}

// openStream GETs a stream URL and returns the response, failing on a
// transport error; the caller checks the status.
func openStream(t *testing.T, u string) *http.Response {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// mustStream opens the room's stream, requires 200 and reads the FLV header.
func mustStream(t *testing.T, s *Server, room int64) *flvStream {
	t.Helper()
	resp := openStream(t, streamURL(t, s, room))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream status %d, want 200", resp.StatusCode)
	}
	fs := &flvStream{resp: resp, r: flv.NewReader(resp.Body)}
	if _, err := fs.r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	return fs
}

// next reads the next tag, copied.
func (fs *flvStream) next() (*flv.Tag, error) {
	t, err := fs.r.ReadTag()
	if err != nil {
		return nil, err
	}
	return t.Clone(), nil
}

func (fs *flvStream) mustNext(t *testing.T) *flv.Tag {
	t.Helper()
	tag, err := fs.next()
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

// readErr reads until the stream ends and returns how it ended, or fails if
// it does not end within timeout.
func (fs *flvStream) readErr(t *testing.T, timeout time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := fs.r.ReadTag(); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		fs.resp.Body.Close()
		<-done
		t.Fatalf("stream still open after %s", timeout)
		return nil
	}
}
