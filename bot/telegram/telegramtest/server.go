// Package telegramtest is a fake Telegram Bot API on loopback, spoken to by
// the real client library: it queues updates that tests write, answers
// getUpdates long polls with them, and records what the bot sends.
package telegramtest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BotUsername is the fake bot's @name.
const BotUsername = "roomrec_bot"

// Call is one API call the bot made that sends or edits something.
type Call struct {
	Method    string // sendMessage, sendPhoto, editMessageText, editMessageCaption
	ChatID    int64
	MessageID int    // for edits: the message edited; for sends: the id given
	Text      string // text or caption
	Photo     string // the photo sent by URL (or file id)
	// PhotoBytes and PhotoName are a photo uploaded with the call
	// (multipart/form-data) and the file name it was uploaded under.
	PhotoBytes []byte
	PhotoName  string
	Markup     string // reply_markup JSON
	ReplyTo    int
}

// Server is the fake Bot API.
type Server struct {
	srv   *httptest.Server
	token string

	mu       sync.Mutex
	updates  []map[string]any
	nextID   int
	nextMsg  int
	calls    []Call
	commands string
	admins   map[[2]int64]bool // chat, user
	tooMany  map[string]int    // method → 429s to answer
	failures map[string][]failure
	pollLag  time.Duration // see SlowPolls
	hangs    map[string]int
	wake     chan struct{}
	closed   chan struct{}
}

// Start starts a fake Bot API for a test and closes it at the end.
func Start(tb testing.TB, token string) *Server {
	s := &Server{token: token, admins: map[[2]int64]bool{}, tooMany: map[string]int{}, failures: map[string][]failure{}, hangs: map[string]int{}, wake: make(chan struct{}), closed: make(chan struct{}), nextMsg: 1000}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	tb.Cleanup(func() {
		close(s.closed)
		s.srv.Close()
	})
	return s
}

// Endpoint is the TELEGRAM_API_ENDPOINT value for this server.
func (s *Server) Endpoint() string { return s.srv.URL + "/bot%s/%s" }

// SetAdmin makes a user an administrator of a chat.
func (s *Server) SetAdmin(chatID, userID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.admins[[2]int64{chatID, userID}] = true
}

// TooManyRequests makes the next n calls of method answer 429 with
// retry_after 1.
func (s *Server) TooManyRequests(method string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tooMany[method] = n
}

// failure is an error the server answers a method with instead of doing it.
type failure struct {
	code        int
	description string
}

// Fail makes the next n calls of method answer with an error, as Telegram
// does: 400 "Bad Request: failed to get HTTP URL content" for a photo it
// cannot fetch, 403 "Forbidden: bot was kicked from the group chat", 502
// while it is down.
func (s *Server) Fail(method string, n, code int, description string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures[method] = append(s.failures[method], failure{code, description})
	}
}

// Hang makes the next n calls of method never answer (until the client
// gives up), as a stuck connection does.
func (s *Server) Hang(method string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hangs[method] += n
}

// SlowPolls makes every getUpdates wait d before it looks at its offset,
// as a loaded Telegram might. A poll the bot abandons in that time confirms
// nothing.
func (s *Server) SlowPolls(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pollLag = d
}

// Failing returns how many injected failures of method are left.
func (s *Server) Failing(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.failures[method])
}

// Recover drops every injected failure: Telegram is back.
func (s *Server) Recover() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.failures)
}

// Command queues a message from a user in a chat. chatType is "private",
// "group" or "supergroup".
func (s *Server) Command(chatID int64, chatType string, userID int64, text string) {
	cmdLen := len(text)
	if i := strings.IndexByte(text, ' '); i >= 0 {
		cmdLen = i
	}
	msg := map[string]any{
		"chat": map[string]any{"id": chatID, "type": chatType, "title": "粉丝群"},
		"from": map[string]any{"id": userID, "is_bot": false, "first_name": "user" + strconv.FormatInt(userID, 10), "username": "user" + strconv.FormatInt(userID, 10)},
		"text": text,
	}
	if strings.HasPrefix(text, "/") {
		msg["entities"] = []map[string]any{{"type": "bot_command", "offset": 0, "length": cmdLen}}
	}
	s.push(msg)
}

// CommandAsChat queues a command sent by an anonymous group admin, which
// Telegram delivers as sent by the group itself.
func (s *Server) CommandAsChat(chatID int64, text string) {
	s.push(map[string]any{
		"chat":        map[string]any{"id": chatID, "type": "supergroup", "title": "粉丝群"},
		"sender_chat": map[string]any{"id": chatID, "type": "supergroup", "title": "粉丝群"},
		"from":        map[string]any{"id": 1087968824, "is_bot": true, "first_name": "Group", "username": "GroupAnonymousBot"},
		"text":        text,
		"entities":    []map[string]any{{"type": "bot_command", "offset": 0, "length": len(strings.Fields(text)[0])}},
	})
}

// Migrate queues the service message a group sends when it becomes a
// supergroup.
func (s *Server) Migrate(oldID, newID int64) {
	s.push(map[string]any{"chat": map[string]any{"id": oldID, "type": "group"}, "migrate_to_chat_id": newID})
}

func (s *Server) push(msg map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	s.nextMsg++
	msg["message_id"] = s.nextMsg
	msg["date"] = time.Now().Unix()
	s.updates = append(s.updates, map[string]any{"update_id": s.nextID, "message": msg})
	close(s.wake)
	s.wake = make(chan struct{})
}

// Calls returns what the bot has sent or edited so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Commands returns the command menu the bot set, as JSON.
func (s *Server) Commands() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commands
}

func reply(w http.ResponseWriter, result any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"ok": true, "result": result})
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	prefix := "/bot" + s.token + "/"
	if !strings.HasPrefix(r.URL.Path, prefix) {
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(map[string]any{"ok": false, "error_code": 401, "description": "Unauthorized"})
		return
	}
	method := strings.TrimPrefix(r.URL.Path, prefix)
	if err := r.ParseMultipartForm(1 << 20); err != nil {
		r.ParseForm()
	}
	s.mu.Lock()
	if s.tooMany[method] > 0 {
		s.tooMany[method]--
		s.mu.Unlock()
		w.WriteHeader(http.StatusTooManyRequests)
		json.NewEncoder(w).Encode(map[string]any{"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1", "parameters": map[string]any{"retry_after": 1}})
		return
	}
	if s.hangs[method] > 0 {
		s.hangs[method]--
		s.mu.Unlock()
		select {
		case <-r.Context().Done():
		case <-s.closed:
		}
		return
	}
	if f := s.failures[method]; len(f) > 0 {
		s.failures[method] = f[1:]
		s.mu.Unlock()
		w.WriteHeader(f[0].code)
		json.NewEncoder(w).Encode(map[string]any{"ok": false, "error_code": f[0].code, "description": f[0].description})
		return
	}
	s.mu.Unlock()
	chatID, _ := strconv.ParseInt(r.Form.Get("chat_id"), 10, 64)
	switch method {
	case "getMe":
		reply(w, map[string]any{"id": 1, "is_bot": true, "first_name": "roomrec", "username": BotUsername})
	case "setMyCommands":
		s.mu.Lock()
		s.commands = r.Form.Get("commands")
		s.mu.Unlock()
		reply(w, true)
	case "getUpdates":
		s.getUpdates(w, r)
	case "getChatMember":
		userID, _ := strconv.ParseInt(r.Form.Get("user_id"), 10, 64)
		s.mu.Lock()
		status := "member"
		if s.admins[[2]int64{chatID, userID}] {
			status = "administrator"
		}
		s.mu.Unlock()
		reply(w, map[string]any{"status": status, "user": map[string]any{"id": userID, "is_bot": false, "first_name": "u"}})
	case "sendMessage", "sendPhoto":
		replyTo, _ := strconv.Atoi(r.Form.Get("reply_to_message_id"))
		s.mu.Lock()
		s.nextMsg++
		id := s.nextMsg
		text := r.Form.Get("text")
		if method == "sendPhoto" {
			text = r.Form.Get("caption")
		}
		call := Call{Method: method, ChatID: chatID, MessageID: id, Text: text, Photo: r.Form.Get("photo"), Markup: r.Form.Get("reply_markup"), ReplyTo: replyTo}
		s.mu.Unlock()
		if method == "sendPhoto" {
			var err error
			if call.PhotoBytes, call.PhotoName, err = upload(r, "photo"); err != nil {
				w.WriteHeader(http.StatusBadRequest)
				json.NewEncoder(w).Encode(map[string]any{"ok": false, "error_code": 400, "description": "Bad Request: " + err.Error()})
				return
			}
		}
		s.mu.Lock()
		s.calls = append(s.calls, call)
		s.mu.Unlock()
		reply(w, map[string]any{"message_id": id, "date": time.Now().Unix(), "chat": map[string]any{"id": chatID, "type": "group"}, "text": text})
	case "editMessageText", "editMessageCaption":
		msgID, _ := strconv.Atoi(r.Form.Get("message_id"))
		text := r.Form.Get("text")
		if method == "editMessageCaption" {
			text = r.Form.Get("caption")
		}
		s.mu.Lock()
		s.calls = append(s.calls, Call{Method: method, ChatID: chatID, MessageID: msgID, Text: text, Markup: r.Form.Get("reply_markup")})
		s.mu.Unlock()
		reply(w, true)
	default:
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(map[string]any{"ok": false, "error_code": 404, "description": "Not Found: method " + method})
	}
}

// upload returns the file uploaded as field, and its name; none is no
// error, since a photo may be sent by URL instead.
func upload(r *http.Request, field string) ([]byte, string, error) {
	if r.MultipartForm == nil || len(r.MultipartForm.File[field]) == 0 {
		return nil, "", nil
	}
	fh := r.MultipartForm.File[field][0]
	f, err := fh.Open()
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	return data, fh.Filename, err
}

// getUpdates answers with the updates from offset on, waiting up to the
// asked timeout (capped, so tests stay quick) for one to arrive.
func (s *Server) getUpdates(w http.ResponseWriter, r *http.Request) {
	offset, _ := strconv.Atoi(r.Form.Get("offset"))
	timeout, _ := strconv.Atoi(r.Form.Get("timeout"))
	s.mu.Lock()
	lag := s.pollLag
	s.mu.Unlock()
	select {
	case <-time.After(lag):
	case <-r.Context().Done():
		return
	}
	// As Telegram does: asking from an offset confirms, and forgets, every
	// update before it.
	s.mu.Lock()
	kept := s.updates[:0]
	for _, u := range s.updates {
		if u["update_id"].(int) >= offset {
			kept = append(kept, u)
		}
	}
	s.updates = kept
	s.mu.Unlock()
	deadline := time.After(min(time.Duration(timeout)*time.Second, 2*time.Second))
	for {
		s.mu.Lock()
		var out []map[string]any
		for _, u := range s.updates {
			if u["update_id"].(int) >= offset {
				out = append(out, u)
			}
		}
		wake := s.wake
		s.mu.Unlock()
		if len(out) > 0 {
			reply(w, out)
			return
		}
		select {
		case <-wake:
		case <-deadline:
			reply(w, []any{})
			return
		case <-r.Context().Done():
			return
		case <-s.closed:
			return
		}
	}
}
