// Package discordtest is a fake Discord on loopback: the REST endpoints
// roomrec uses and a gateway that sends HELLO, READY and the interactions
// tests create, spoken to by the real discordgo library.
package discordtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
)

// AppID is the fake bot's user and application id.
const AppID = "100000000000000001"

// Call is one REST call the bot made.
type Call struct {
	Method string
	Path   string // without the /api/vN prefix
	// Body is the JSON body, or a multipart body's payload_json part.
	Body map[string]any
	// Files are the files a multipart body uploaded, in order.
	Files []Attachment
}

// Attachment is a file uploaded with a call.
type Attachment struct {
	Field       string // the form field: files[0], files[1]… (or file)
	Name        string // its file name
	ContentType string
	Data        []byte
}

// Server is the fake Discord.
type Server struct {
	srv *httptest.Server

	mu      sync.Mutex
	calls   []Call
	gateway *websocket.Conn
	wmu     sync.Mutex
	seq     int
	nextID  int
	ready   chan struct{}
	fails   []failure
	dms     map[string]string // recipient user id → DM channel id
}

// failure is an error answer waiting for a matching REST call.
type failure struct {
	method, path string
	status, code int
	message      string
}

// Start starts a fake Discord for a test.
func Start(tb testing.TB) *Server {
	s := &Server{ready: make(chan struct{}), nextID: 500, dms: map[string]string{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	tb.Cleanup(func() {
		s.mu.Lock()
		if s.gateway != nil {
			s.gateway.Close()
		}
		s.mu.Unlock()
		s.srv.Close()
	})
	return s
}

// Fail makes the next n REST calls with this method and path prefix (as in
// Call.Path) answer with an HTTP status and a Discord error code, as
// Discord does: 403 code 50001 "Missing Access" when the bot was removed,
// 404 code 10008 "Unknown Message" for a deleted message, 502 when it is
// down.
func (s *Server) Fail(method, pathPrefix string, n, status, code int, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.fails = append(s.fails, failure{method, pathPrefix, status, code, message})
	}
}

// URL is the DISCORD_API_URL value for this server.
func (s *Server) URL() string { return s.srv.URL }

// Ready is closed once a bot has identified on the gateway.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Calls returns the REST calls made so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// DMChannel returns the id of the DM channel opened with a user (by
// POST /users/@me/channels), or "" if none was.
func (s *Server) DMChannel(userID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dms[userID]
}

// Interaction describes a slash command or autocomplete to dispatch.
type Interaction struct {
	ID           string
	Autocomplete bool
	GuildID      string // empty: a DM
	ChannelID    string
	UserID       string
	Permissions  int64 // the member's permissions in the channel
	Name         string
	Options      []map[string]any // as Discord sends them
}

// Dispatch sends an INTERACTION_CREATE to the connected bot.
func (s *Server) Dispatch(in Interaction) {
	typ := 2
	if in.Autocomplete {
		typ = 4
	}
	d := map[string]any{
		"id": in.ID, "application_id": AppID, "type": typ, "token": "token-" + in.ID,
		"channel_id": in.ChannelID, "version": 1,
		"data": map[string]any{"id": "cmd-" + in.Name, "name": in.Name, "type": 1, "options": in.Options},
	}
	user := map[string]any{"id": in.UserID, "username": "user" + in.UserID}
	if in.GuildID != "" {
		d["guild_id"] = in.GuildID
		d["member"] = map[string]any{"user": user, "permissions": fmt.Sprint(in.Permissions), "roles": []string{}}
	} else {
		d["user"] = user
	}
	s.send(map[string]any{"op": 0, "t": "INTERACTION_CREATE", "d": d})
}

func (s *Server) send(msg map[string]any) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	conn := s.gateway
	if msg["op"] == 0 {
		s.seq++
		msg["s"] = s.seq
	}
	s.mu.Unlock()
	if conn != nil {
		conn.WriteJSON(msg)
	}
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	if strings.TrimSuffix(r.URL.Path, "/") == "/gateway-ws" {
		s.serveGateway(w, r)
		return
	}
	_, path, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/api/"), "/") // drop "vN"
	if !ok {
		http.NotFound(w, r)
		return
	}
	path = "/" + path
	var body map[string]any
	var files []Attachment
	raw, _ := io.ReadAll(r.Body)
	if mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		var err error
		if body, files, err = readMultipart(raw, params["boundary"]); err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]any{"message": "Invalid Form Body: " + err.Error(), "code": 50035})
			return
		}
	} else if len(raw) > 0 && raw[0] == '{' {
		json.Unmarshal(raw, &body)
	} else if len(raw) > 0 && raw[0] == '[' {
		var list []any
		json.Unmarshal(raw, &list)
		body = map[string]any{"list": list}
	}
	s.mu.Lock()
	s.calls = append(s.calls, Call{Method: r.Method, Path: path, Body: body, Files: files})
	s.nextID++
	id := fmt.Sprint(s.nextID)
	for i, f := range s.fails {
		if f.method == r.Method && strings.HasPrefix(path, f.path) {
			s.fails = append(s.fails[:i], s.fails[i+1:]...)
			s.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(f.status)
			json.NewEncoder(w).Encode(map[string]any{"message": f.message, "code": f.code})
			return
		}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && path == "/gateway":
		json.NewEncoder(w).Encode(map[string]any{"url": "ws://" + r.Host + "/gateway-ws"})
	case r.Method == http.MethodPut && strings.HasPrefix(path, "/applications/"):
		list, _ := body["list"].([]any)
		json.NewEncoder(w).Encode(list)
	case r.Method == http.MethodPost && strings.HasPrefix(path, "/interactions/"):
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPost && path == "/users/@me/channels":
		// As Discord does: the same DM channel for a recipient each time.
		recipient, _ := body["recipient_id"].(string)
		s.mu.Lock()
		dm, ok := s.dms[recipient]
		if !ok {
			dm = id
			s.dms[recipient] = dm
		}
		s.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"id": dm, "type": 1, "recipients": []any{map[string]any{"id": recipient, "username": "user" + recipient}}})
	case strings.HasPrefix(path, "/channels/") || strings.HasPrefix(path, "/webhooks/"):
		channel := strings.Split(path, "/")[2]
		msgID := id
		if r.Method == http.MethodPatch {
			msgID = path[strings.LastIndexByte(path, '/')+1:]
		}
		attachments := []any{}
		for i, f := range files {
			attachments = append(attachments, map[string]any{"id": fmt.Sprintf("%s%d", msgID, i), "filename": f.Name, "content_type": f.ContentType, "size": len(f.Data)})
		}
		json.NewEncoder(w).Encode(map[string]any{"id": msgID, "channel_id": channel, "content": body["content"], "attachments": attachments})
	default:
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(map[string]any{"message": "404: Not Found", "code": 0})
	}
}

// readMultipart reads a multipart/form-data body as discordgo sends one:
// the JSON payload in payload_json and each file in a part of its own.
func readMultipart(raw []byte, boundary string) (map[string]any, []Attachment, error) {
	var body map[string]any
	var files []Attachment
	mr := multipart.NewReader(bytes.NewReader(raw), boundary)
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return body, files, nil
		}
		if err != nil {
			return nil, nil, err
		}
		data, err := io.ReadAll(part)
		if err != nil {
			return nil, nil, err
		}
		switch name := part.FormName(); {
		case name == "payload_json":
			if err := json.Unmarshal(data, &body); err != nil {
				return nil, nil, fmt.Errorf("payload_json: %w", err)
			}
		case name == "file" || strings.HasPrefix(name, "files["):
			files = append(files, Attachment{Field: name, Name: part.FileName(), ContentType: part.Header.Get("Content-Type"), Data: data})
		}
	}
}

// serveGateway speaks enough of the gateway for a bot: HELLO, READY after
// IDENTIFY, heartbeat ACKs, and the dispatches tests send.
func (s *Server) serveGateway(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.gateway = conn
	s.mu.Unlock()
	s.send(map[string]any{"op": 10, "d": map[string]any{"heartbeat_interval": 41250}})
	for {
		var msg struct {
			Op int `json:"op"`
		}
		if err := conn.ReadJSON(&msg); err != nil {
			return
		}
		switch msg.Op {
		case 1:
			s.send(map[string]any{"op": 11})
		case 2:
			s.send(map[string]any{"op": 0, "t": "READY", "d": map[string]any{
				"v": 10, "session_id": "session", "resume_gateway_url": "ws://" + r.Host + "/gateway-ws",
				"user":        map[string]any{"id": AppID, "username": "roomrec", "discriminator": "0", "bot": true},
				"application": map[string]any{"id": AppID, "flags": 0},
				"guilds":      []any{},
			}})
			select {
			case <-s.ready:
			default:
				close(s.ready)
			}
		}
	}
}
