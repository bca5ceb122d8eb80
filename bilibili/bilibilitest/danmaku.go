package bilibilitest

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"roomrec/bilibili/danmaku"
)

// authTimeout is how long Bilibili waits for the auth packet.
const authTimeout = 5 * time.Second

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

// wsConn is one danmaku websocket. Room messages are queued and sent by a
// writer goroutine, so messages sent back to back share a frame as they do
// from Bilibili, and a slow client never blocks the test that sends them.
type wsConn struct {
	conn *websocket.Conn
	wmu  sync.Mutex // gorilla/websocket allows one writer at a time

	mu    sync.Mutex
	queue [][]byte      // message bodies not yet sent
	wake  chan struct{} // signalled when queue gains a message
}

// framings is the cycle of frame encodings a connection goes through:
// mostly brotli, sometimes zlib, sometimes bare, as Bilibili mixes them.
// A fixed cycle (from a seeded start) means any ten frames in a row show
// every kind, so a client test need not be lucky.
var framings = [10]danmaku.Version{
	danmaku.VersionBrotli, danmaku.VersionBrotli, danmaku.VersionZlib, danmaku.VersionBrotli, danmaku.VersionBrotli,
	danmaku.VersionJSON, danmaku.VersionBrotli, danmaku.VersionBrotli, danmaku.VersionZlib, danmaku.VersionBrotli,
}

func newWSConn(conn *websocket.Conn) *wsConn {
	return &wsConn{conn: conn, wake: make(chan struct{}, 1)}
}

func (c *wsConn) write(frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.conn.WriteMessage(websocket.BinaryMessage, frame)
}

// enqueue queues message bodies for the writer.
func (c *wsConn) enqueue(bodies ...[]byte) {
	c.mu.Lock()
	c.queue = append(c.queue, bodies...)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writeMessages sends queued messages until done closes or a write fails,
// every batch framed the way Bilibili varies it (see framings): one brotli
// or zlib packet holding them all, or bare packets sharing one frame. A
// failed write closes the connection, which ends the handler.
func (c *wsConn) writeMessages(s *Server, done <-chan struct{}) {
	next := s.intn(len(framings))
	for {
		select {
		case <-c.wake:
		case <-done:
			return
		}
		c.mu.Lock()
		bodies := c.queue
		c.queue = nil
		c.mu.Unlock()
		if len(bodies) == 0 {
			continue
		}
		packets := make([]danmaku.Packet, len(bodies))
		for i, b := range bodies {
			packets[i] = danmaku.Packet{Version: danmaku.VersionJSON, Op: danmaku.OpMessage, Body: b}
		}
		var frame []byte
		if v := framings[next]; v == danmaku.VersionJSON {
			for _, p := range packets {
				frame = danmaku.AppendPacket(frame, p)
			}
		} else {
			frame, _ = danmaku.EncodeBatch(v, packets...) // fails only for a version that is not a compression
		}
		next = (next + 1) % len(framings)
		if err := c.write(frame); err != nil {
			c.conn.Close()
			return
		}
	}
}

// handleDanmaku serves /sub: auth first, then heartbeats answered and room
// messages pushed until either side closes.
func (s *Server) handleDanmaku(w http.ResponseWriter, r *http.Request) {
	if !s.track() {
		http.Error(w, "server closing", http.StatusServiceUnavailable)
		return
	}
	defer s.conns.Done()
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	// The connection is hijacked, so http.Server.Close does not see it;
	// the server's context closes it instead.
	stop := context.AfterFunc(s.ctx, func() { conn.Close() })
	defer stop()

	c := newWSConn(conn)
	room, err := s.authenticate(c)
	if err != nil {
		s.log.Debug("danmaku auth refused", "err", err)
		return
	}
	writerDone := make(chan struct{})
	var writer sync.WaitGroup
	writer.Go(func() { c.writeMessages(s, writerDone) })
	defer writer.Wait()
	defer close(writerDone)
	defer func() {
		room.mu.Lock()
		delete(room.ws, c)
		room.mu.Unlock()
	}()

	var dec danmaku.Decoder
	for {
		conn.SetReadDeadline(time.Now().Add(70 * time.Second))
		_, frame, err := conn.ReadMessage()
		if err != nil {
			return
		}
		err = dec.Decode(frame, func(p danmaku.Packet) error {
			if p.Op != danmaku.OpHeartbeat {
				return nil
			}
			body := make([]byte, 4)
			binary.BigEndian.PutUint32(body, uint32(1000+s.intn(1000)))
			return c.write(danmaku.AppendPacket(nil, danmaku.Packet{Version: danmaku.VersionInt, Op: danmaku.OpHeartbeatReply, Seq: 1, Body: body}))
		})
		if err != nil {
			return
		}
	}
}

// authenticate reads the auth packet and answers it. A missing, late or
// wrong auth gets {"code":-101} and the connection is closed by the caller.
func (s *Server) authenticate(c *wsConn) (*Room, error) {
	c.conn.SetReadDeadline(time.Now().Add(authTimeout))
	_, frame, err := c.conn.ReadMessage()
	if err != nil {
		return nil, err
	}
	var auth struct {
		UID      int64  `json:"uid"`
		RoomID   int64  `json:"roomid"`
		Protover int    `json:"protover"`
		Key      string `json:"key"`
		Buvid    string `json:"buvid"`
	}
	var dec danmaku.Decoder
	var gotAuth bool
	err = dec.Decode(frame, func(p danmaku.Packet) error {
		if p.Op != danmaku.OpAuth || gotAuth {
			return errors.New("first packet is not auth")
		}
		gotAuth = true
		return json.Unmarshal(p.Body, &auth)
	})
	s.mu.Lock()
	tokenRoom, known := s.tokens[auth.Key]
	room := s.rooms[auth.RoomID]
	s.mu.Unlock()
	if err == nil && (!gotAuth || !known || tokenRoom != auth.RoomID || room == nil) {
		err = errors.New("token not issued for this room")
	}
	code := 0
	if err != nil {
		code = -101
	}
	// Counted before the reply goes out, so a client that has seen its
	// auth accepted is already reached by DropDanmakuConnections and
	// broadcasts (queued until the writer starts).
	if err == nil {
		room.mu.Lock()
		room.ws[c] = struct{}{}
		room.mu.Unlock()
	}
	reply := danmaku.AppendPacket(nil, danmaku.Packet{Version: danmaku.VersionInt, Op: danmaku.OpAuthReply, Seq: 1,
		Body: mustJSON(map[string]int{"code": code})})
	if werr := c.write(reply); err == nil && werr != nil {
		room.mu.Lock()
		delete(room.ws, c)
		room.mu.Unlock()
		err = werr
	}
	return room, err
}

// broadcastMessages queues message bodies for every authenticated
// websocket of the room. It does not wait for them to be sent.
func (r *Room) broadcastMessages(bodies ...[]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.ws {
		c.enqueue(bodies...)
	}
}

func (r *Room) dropWebsockets() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.ws {
		c.conn.Close()
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
