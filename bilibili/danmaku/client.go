package danmaku

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"roomrec"
)

// Errors callers branch on.
var (
	// ErrAuthRejected: the server refused the auth packet, usually because
	// the token is stale. Fetch a new one before reconnecting.
	ErrAuthRejected = errors.New("danmaku auth rejected")
	// ErrConnectionLost: the connection died (read error, or no data for
	// longer than the read timeout). Reconnect.
	ErrConnectionLost = errors.New("danmaku connection lost")
)

// heartbeatBody is what the website sends as the heartbeat body.
var heartbeatBody = []byte("[object Object]")

// Config is what Dial needs to join a room's danmaku.
type Config struct {
	URLs              []string // websocket URLs, tried in order
	RoomID, UID       int64    // real room id; logged-in user or 0
	Token, Buvid      string   // from getDanmuInfo and the buvid3 cookie
	Header            http.Header
	Dialer            *websocket.Dialer // nil: a default with a 10 s handshake timeout
	HeartbeatInterval time.Duration     // default 30 s
	ReadTimeout       time.Duration     // default 70 s: two missed heartbeat replies
	AuthTimeout       time.Duration     // default 5 s
	// Want says which cmds to parse; others are dropped unparsed. Nil
	// parses all.
	Want   func(cmd string) bool
	Logger *slog.Logger
}

// Conn is an authenticated danmaku connection.
type Conn struct {
	cfg  Config
	ws   *websocket.Conn
	url  string
	dec  Decoder
	wmu  sync.Mutex // one writer at a time, as gorilla/websocket requires
	once sync.Once
}

// Dial connects to the first URL that accepts a websocket and authenticates.
// It returns an error wrapping ErrAuthRejected if the server refuses the
// token, and the last dial error if no URL connects.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	if cfg.Dialer == nil {
		cfg.Dialer = &websocket.Dialer{HandshakeTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment}
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 30 * time.Second
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 70 * time.Second
	}
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.URLs) == 0 {
		return nil, errors.New("dial danmaku: no URLs")
	}
	var lastErr error
	for _, u := range cfg.URLs {
		ws, _, err := cfg.Dialer.DialContext(ctx, u, cfg.Header)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			cfg.Logger.Debug("danmaku host failed", slog.String("url", u), roomrec.LogErr(err))
			lastErr = fmt.Errorf("dial %s: %w", u, err)
			continue
		}
		c := &Conn{cfg: cfg, ws: ws, url: u}
		if err := c.auth(ctx); err != nil {
			ws.Close()
			return nil, err
		}
		return c, nil
	}
	return nil, lastErr
}

// URL returns the URL the connection was made to.
func (c *Conn) URL() string { return c.url }

// Close closes the connection.
func (c *Conn) Close() error {
	var err error
	c.once.Do(func() { err = c.ws.Close() })
	return err
}

func (c *Conn) send(op Op, version Version, body []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.ws.WriteMessage(websocket.BinaryMessage, AppendPacket(nil, Packet{Version: version, Op: op, Seq: 1, Body: body}))
}

// auth sends the auth packet and waits for a good reply.
func (c *Conn) auth(ctx context.Context) error {
	body, _ := json.Marshal(map[string]any{
		"uid": c.cfg.UID, "roomid": c.cfg.RoomID, "protover": 3, "platform": "web", "type": 2,
		"key": c.cfg.Token, "buvid": c.cfg.Buvid,
	})
	if err := c.send(OpAuth, VersionInt, body); err != nil {
		return fmt.Errorf("send danmaku auth: %w", err)
	}
	deadline := time.Now().Add(c.cfg.AuthTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.ws.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.ws.SetReadDeadline(time.Now()) })
	defer stop()
	for {
		_, frame, err := c.ws.ReadMessage()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: no auth reply: %v", ErrAuthRejected, err)
		}
		var reply []byte
		err = c.dec.Decode(frame, func(p Packet) error {
			if p.Op == OpAuthReply && reply == nil {
				reply = append([]byte(nil), p.Body...)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("danmaku auth reply: %w", err)
		}
		if reply == nil {
			continue
		}
		var r struct {
			Code int `json:"code"`
		}
		if err := json.Unmarshal(reply, &r); err != nil || r.Code != 0 {
			return fmt.Errorf("%w: reply %s", ErrAuthRejected, reply)
		}
		return nil
	}
}

// Run reads messages and calls handle with each wanted event, in order,
// until ctx ends (it returns ctx.Err()) or the connection dies (an error
// wrapping ErrConnectionLost). It sends heartbeats itself. handle runs on
// Run's goroutine; a slow handle delays reading, so hand work off.
func (c *Conn) Run(ctx context.Context, handle func(Event)) error {
	stopHeartbeat := c.startHeartbeat()
	defer stopHeartbeat()
	// Closing the socket is what unblocks ReadMessage on cancel.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	for {
		c.ws.SetReadDeadline(time.Now().Add(c.cfg.ReadTimeout))
		_, frame, err := c.ws.ReadMessage()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: %v", ErrConnectionLost, err)
		}
		err = c.dec.Decode(frame, func(p Packet) error {
			return c.deliver(p, handle)
		})
		if err != nil {
			// A malformed frame means we can no longer trust the stream.
			c.Close()
			return fmt.Errorf("%w: %v", ErrConnectionLost, err)
		}
	}
}

// deliver turns one packet into an event for handle.
func (c *Conn) deliver(p Packet, handle func(Event)) error {
	switch p.Op {
	case OpHeartbeatReply:
		if len(p.Body) >= 4 {
			handle(HeartbeatReply{Popularity: binary.BigEndian.Uint32(p.Body)})
		}
	case OpMessage:
		cmd, err := CmdOf(p.Body)
		if err != nil {
			c.cfg.Logger.Debug("danmaku message without cmd", roomrec.LogErr(err))
			return nil
		}
		if c.cfg.Want != nil && !c.cfg.Want(cmd) {
			return nil
		}
		ev, err := parseCmd(cmd, p.Body)
		if err != nil {
			// One odd message must not cost the connection.
			c.cfg.Logger.Debug("danmaku message not understood", slog.String("cmd", cmd), roomrec.LogErr(err))
			return nil
		}
		handle(ev)
	}
	return nil
}

// startHeartbeat sends a heartbeat now and every HeartbeatInterval until
// stop is called; stop returns once no heartbeat is being sent. A timer,
// not a goroutine: an idle room costs no stack for its heartbeats.
func (c *Conn) startHeartbeat() (stop func()) {
	var (
		mu      sync.Mutex
		stopped bool
		sending sync.WaitGroup
		timer   *time.Timer
	)
	beat := func() {
		mu.Lock()
		if stopped {
			mu.Unlock()
			return
		}
		sending.Add(1)
		mu.Unlock()
		defer sending.Done()
		if err := c.send(OpHeartbeat, VersionInt, heartbeatBody); err != nil {
			return // the read loop sees the dead connection
		}
		mu.Lock()
		if !stopped {
			timer.Reset(c.cfg.HeartbeatInterval)
		}
		mu.Unlock()
	}
	mu.Lock()
	timer = time.AfterFunc(0, beat)
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		timer.Stop()
		mu.Unlock()
		sending.Wait()
	}
}
