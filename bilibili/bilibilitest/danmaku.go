package bilibilitest

import (
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

// wsConn is one authenticated danmaku websocket. Writes are serialised, as
// gorilla/websocket requires one writer at a time.
type wsConn struct {
	conn *websocket.Conn
	wmu  sync.Mutex
}

func (c *wsConn) write(frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.conn.WriteMessage(websocket.BinaryMessage, frame)
}

// handleDanmaku serves /sub: auth first, then heartbeats answered and room
// messages pushed until either side closes.
func (s *Server) handleDanmaku(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	s.conns.Add(1)
	defer s.conns.Done()
	defer conn.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-s.ctx.Done():
			conn.Close()
		case <-stop:
		}
	}()

	c := &wsConn{conn: conn}
	room, err := s.authenticate(c)
	if err != nil {
		s.log.Debug("danmaku auth refused", "err", err)
		return
	}
	room.mu.Lock()
	room.ws[c] = struct{}{}
	room.mu.Unlock()
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
	reply := danmaku.AppendPacket(nil, danmaku.Packet{Version: danmaku.VersionInt, Op: danmaku.OpAuthReply, Seq: 1,
		Body: mustJSON(map[string]int{"code": code})})
	if werr := c.write(reply); err == nil {
		err = werr
	}
	return room, err
}

// broadcastMessages sends message bodies to every websocket of the room.
// Each connection gets them framed the way Bilibili varies it: usually a
// brotli batch, sometimes zlib, sometimes bare packets sharing one frame.
func (r *Room) broadcastMessages(bodies ...[]byte) {
	r.mu.Lock()
	conns := make([]*wsConn, 0, len(r.ws))
	for c := range r.ws {
		conns = append(conns, c)
	}
	r.mu.Unlock()
	packets := make([]danmaku.Packet, len(bodies))
	for i, b := range bodies {
		packets[i] = danmaku.Packet{Version: danmaku.VersionJSON, Op: danmaku.OpMessage, Body: b}
	}
	for _, c := range conns {
		var frame []byte
		switch n := r.s.intn(10); {
		case n < 7:
			frame, _ = danmaku.EncodeBatch(danmaku.VersionBrotli, packets...)
		case n < 9:
			frame, _ = danmaku.EncodeBatch(danmaku.VersionZlib, packets...)
		default:
			for _, p := range packets {
				frame = danmaku.AppendPacket(frame, p)
			}
		}
		if err := c.write(frame); err != nil {
			c.conn.Close()
		}
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
