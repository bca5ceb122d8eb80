package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"roomrec"
	"roomrec/bilibili"
	"roomrec/recording"
	"roomrec/storage"
)

// Router turns commands into actions and replies. It is the same for every
// platform.
type Router struct {
	store    RouterStore
	recorder Recorder
	rooms    Rooms
	opts     RouterOptions
	log      *slog.Logger

	// following serializes changes to subscriptions and the task
	// references that mirror them: two /record or a /record and a /stop
	// arriving together (each platform update runs on its own goroutine)
	// must leave exactly one reference per subscription. Only local work
	// is done under it: the database, and Manager calls that do not wait
	// for Bilibili or for files to finish.
	following sync.Mutex
}

// RouterOptions are what a Router is given besides the store, the
// recorder and Bilibili. The zero value of each turns its feature off.
type RouterOptions struct {
	Logger *slog.Logger // discards when nil
	// DiskFree reports free bytes where recordings go, for /status.
	DiskFree func() (uint64, error)
	// Links mints download links for /archive link; nil turns them off.
	Links Links
	// LinksLocal says the links point at this machine (no public URL is
	// configured): fine in the console, useless to a group, which is told
	// so instead.
	LinksLocal bool
	// Retention is the server's archive policy: a chat can keep less with
	// /archive keep, never more.
	Retention storage.Retention
	// Account is the Bilibili login for /login, /logout and /status; nil
	// turns logging in off. Owners may use it (ROOMREC_OWNERS), and
	// Messages carries its QR code and progress to them.
	Account  Account
	Owners   []Owner
	Messages Messenger
	// Location is the clock /rules … hours are read on
	// (ROOMREC_TIMEZONE); Shanghai when nil.
	Location *time.Location
}

// Links mints a signed, expiring download link for a recording;
// *download.Links implements it.
type Links interface {
	Link(recordingID int64) (url string, expires time.Time, err error)
}

// NewRouter returns a Router acting on store and recorder, looking rooms
// up with rooms.
func NewRouter(store RouterStore, recorder Recorder, rooms Rooms, opts RouterOptions) *Router {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Router{store: store, recorder: recorder, rooms: rooms, opts: opts, log: logger}
}

// Handle runs one command and returns its reply. It never panics: an
// error a user may see (a *roomrec.Error) is told as its message, anything
// else is logged in full and the user gets a generic reply.
func (r *Router) Handle(ctx context.Context, req Request) (reply Reply) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("command panicked", slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			reply = Reply{Text: roomrec.InternalMessage, Private: true}
		}
	}()
	text, err := r.dispatch(ctx, req)
	if err == nil {
		return Reply{Text: text}
	}
	if roomrec.ErrorCode(err) == roomrec.EINTERNAL {
		if errors.Is(err, bilibili.ErrRiskControl) {
			// Not a fault: worth waiting out, and the user is told so.
			err = errRiskControl
		} else {
			r.log.Error("command failed", roomrec.LogChat(req.Chat.Platform, req.Chat.ID), slog.String("command", commandName(req)), roomrec.LogErr(err))
		}
	}
	return Reply{Text: roomrec.ErrorMessage(err), Private: true}
}

var errRiskControl = roomrec.Errorf(roomrec.EUNAVAILABLE, "Bilibili is refusing requests right now. Please try again in a few minutes.")

// commandName names the command of req, for the log.
func commandName(req Request) string {
	if req.Command != "" {
		return "/" + req.Command
	}
	return firstWord(req.Text)
}

// read returns the command of req and its arguments, checked against
// Commands: the options a platform with typed options gave, or else the
// text.
func (r *Router) read(req Request) (call, error) {
	zone := orShanghai(r.opts.Location).String()
	if req.Command != "" {
		return readOptions(req.Command, req.Options, zone)
	}
	return readText(req.Text, zone)
}

func (r *Router) dispatch(ctx context.Context, req Request) (string, error) {
	c, err := r.read(req)
	if err != nil {
		return "", err
	}
	if err := r.permit(ctx, req, c); err != nil {
		return "", err
	}
	switch c.name {
	case "help":
		return help(), nil
	case "record", "watch":
		return r.subscribe(ctx, req, c)
	case "stop":
		return r.stop(ctx, req, c)
	case "list":
		return r.list(ctx, req)
	case "archive list", "archive delete", "archive link", "archive keep":
		return r.archive(ctx, req, c)
	case "rules":
		return r.rules(ctx, req, c)
	case "status":
		return r.status(ctx, req)
	case "login":
		return r.login(ctx, req)
	case "logout":
		return r.logout(ctx, req)
	}
	return "", fmt.Errorf("command %s is in the table but not handled", c.name)
}

// permit says why the sender of req may not make call c, or nil if they
// may, as the command's Who says.
func (r *Router) permit(ctx context.Context, req Request, c call) error {
	switch c.cmd.Who {
	case Admins:
		return requireAdmin(ctx, req, c.cmd.Action)
	case AdminsToChange:
		if c.changes() {
			return requireAdmin(ctx, req, c.cmd.Action)
		}
	case Owners:
		return r.mayLogin(req, c.cmd.Name)
	}
	return nil
}

// chat returns the stored chat for a request, creating it on first use.
func (r *Router) chat(ctx context.Context, req Request) (storage.Chat, error) {
	return r.store.EnsureChat(ctx, storage.Chat{Platform: req.Chat.Platform, PlatformID: req.Chat.ID, Title: req.Chat.Title})
}

// requireAdmin refuses non-admins in groups; a private chat is its own admin.
func requireAdmin(ctx context.Context, req Request, what string) error {
	if req.Chat.Private {
		return nil
	}
	if req.IsAdmin == nil {
		return refuse("Only admins of this chat can %s.", what)
	}
	ok, err := req.IsAdmin(ctx)
	if err != nil {
		return fmt.Errorf("check admin: %w", err)
	}
	if !ok {
		return refuse("Only admins of this chat can %s.", what)
	}
	return nil
}

// lookup finds a room on Bilibili, turning "not found" into a plain reply.
func (r *Router) lookup(ctx context.Context, id int64) (storage.Room, error) {
	info, err := r.rooms.RoomInfo(ctx, id)
	if errors.Is(err, bilibili.ErrRoomNotFound) {
		return storage.Room{}, userErr("Bilibili has no room %d.", id)
	}
	if err != nil {
		return storage.Room{}, err
	}
	return storedRoom(info), nil
}

func (r *Router) subscribe(ctx context.Context, req Request, c call) (string, error) {
	room, err := r.lookup(ctx, c.room)
	if err != nil {
		return "", err
	}
	chat, err := r.chat(ctx, req)
	if err != nil {
		return "", err
	}
	mode := storage.Record
	if c.name == "watch" {
		mode = storage.Watch
	}
	r.following.Lock()
	defer r.following.Unlock()
	followed, _, err := r.followed(ctx, chat.ID, room.RoomID)
	if err != nil {
		return "", err
	}
	before := followed.Mode
	if before == mode {
		return fmt.Sprintf("This chat already %s %s.", modeVerb(mode), roomName(room)), nil
	}
	// Stored first, so a crash between the two leaves the subscription to
	// be resumed at the next start rather than a task nobody asked for.
	if _, err := r.store.Subscribe(ctx, chat.ID, room, mode, req.User); err != nil {
		return "", err
	}
	if _, err := r.recorder.AcquireRoom(recordingRoom(room), mode == storage.Record); err != nil {
		return "", err
	}
	if before != "" {
		r.recorder.Release(room.RoomID, before == storage.Record)
	}
	if mode == storage.Record {
		return fmt.Sprintf("Recording %s for this chat. I'll post here when it goes live.", roomName(room)), nil
	}
	return fmt.Sprintf("Watching %s. I'll post here when it goes live (not recording).", roomName(room)), nil
}

func (r *Router) stop(ctx context.Context, req Request, c call) (string, error) {
	chat, err := r.chat(ctx, req)
	if err != nil {
		return "", err
	}
	r.following.Lock()
	defer r.following.Unlock()
	followed, err := r.mustFollow(ctx, chat.ID, c.room)
	if err != nil {
		return "", err
	}
	roomID := followed.RoomID
	sub, err := r.store.Unsubscribe(ctx, chat.ID, roomID)
	if err != nil {
		return "", err
	}
	if err := r.recorder.Release(roomID, sub.Mode == storage.Record); err != nil {
		r.log.Warn("release after /stop", roomrec.LogRoom(roomID), roomrec.LogErr(err))
	}
	return fmt.Sprintf("Stopped following %s.", roomName(sub.Room)), nil
}

// MigrateChat moves a chat to a new platform id, as when a Telegram group
// becomes a supergroup, keeping one task reference per subscription: where
// both ids followed the same room, the merged chat keeps the new id's
// subscription and the old one's reference is released.
func (r *Router) MigrateChat(ctx context.Context, platform storage.Platform, oldID, newID string) error {
	r.following.Lock()
	defer r.following.Unlock()
	oldChat, err := r.store.EnsureChat(ctx, storage.Chat{Platform: platform, PlatformID: oldID})
	if err != nil {
		return err
	}
	newChat, err := r.store.EnsureChat(ctx, storage.Chat{Platform: platform, PlatformID: newID})
	if err != nil {
		return err
	}
	oldSubs, err := r.store.ChatSubscriptions(ctx, oldChat.ID)
	if err != nil {
		return err
	}
	newSubs, err := r.store.ChatSubscriptions(ctx, newChat.ID)
	if err != nil {
		return err
	}
	if err := r.store.MigrateChat(ctx, platform, oldID, newID); err != nil {
		return err
	}
	kept := map[int64]bool{}
	for _, s := range newSubs {
		kept[s.RoomID] = true
	}
	for _, s := range oldSubs {
		if kept[s.RoomID] {
			if err := r.recorder.Release(s.RoomID, s.Mode == storage.Record); err != nil {
				r.log.Warn("release after merging chats", roomrec.LogRoom(s.RoomID), roomrec.LogErr(err))
			}
		}
	}
	return nil
}

// Resume takes a task reference for every subscription in the database,
// so rooms are watched again after a restart exactly as chats left them,
// and returns how many rooms it resumed. It holds the lock /record and
// /stop take, so a command that arrives meanwhile waits and still leaves
// one reference per subscription. Known rooms need no lookup: a Bilibili
// that refuses requests at start-up delays the tasks, it does not drop
// them. It stops at the first reference the recorder refuses.
func (r *Router) Resume(ctx context.Context) (int, error) {
	r.following.Lock()
	defer r.following.Unlock()
	rooms, err := r.store.SubscribedRooms(ctx)
	if err != nil {
		return 0, err
	}
	for _, want := range rooms {
		subs, err := r.store.RoomSubscribers(ctx, want.RoomID)
		if err != nil {
			return 0, err
		}
		for _, sub := range subs {
			if _, err := r.recorder.AcquireRoom(recordingRoom(want.Room), sub.Mode == storage.Record); err != nil {
				return 0, fmt.Errorf("resume room %d: %w", want.RoomID, err)
			}
		}
	}
	return len(rooms), nil
}

// followed returns the chat's subscription to the room with a real or
// short id. Short ids are matched among the chat's own rooms, without
// asking Bilibili.
func (r *Router) followed(ctx context.Context, chatID, id int64) (storage.Subscription, bool, error) {
	subs, err := r.store.ChatSubscriptions(ctx, chatID)
	if err != nil {
		return storage.Subscription{}, false, err
	}
	for _, s := range subs {
		if s.RoomID == id || (s.ShortID != 0 && s.ShortID == id) {
			return s, true, nil
		}
	}
	return storage.Subscription{}, false, nil
}

// mustFollow is followed for a command about a room the chat must follow:
// a room it does not is refused, naming the room.
func (r *Router) mustFollow(ctx context.Context, chatID, id int64) (storage.Subscription, error) {
	sub, ok, err := r.followed(ctx, chatID, id)
	if err == nil && !ok {
		err = userErr("This chat does not follow room %d. /list shows its rooms.", id)
	}
	return sub, err
}

func (r *Router) list(ctx context.Context, req Request) (string, error) {
	chat, err := r.chat(ctx, req)
	if err != nil {
		return "", err
	}
	subs, err := r.store.ChatSubscriptions(ctx, chat.ID)
	if err != nil {
		return "", err
	}
	if len(subs) == 0 {
		return "This chat follows no rooms yet. /record <room> to start.", nil
	}
	state := map[int64]string{}
	live := map[int64]recording.TaskInfo{}
	for _, t := range r.recorder.List() {
		if t.Live && t.Err == nil {
			live[t.RoomID] = t
		}
		switch {
		case t.Err != nil:
			state[t.RoomID] = "stopped: " + t.Err.Error()
		case t.Live && t.Record && t.Skipped:
			state[t.RoomID] = "live, not recorded (rules)"
		case t.Live && t.Record:
			state[t.RoomID] = "live, recording"
		case t.Live:
			state[t.RoomID] = "live"
		default:
			state[t.RoomID] = "offline"
		}
	}
	loc := orShanghai(r.opts.Location)
	var b strings.Builder
	for _, s := range subs {
		st := state[s.RoomID]
		if st == "" {
			st = "starting"
		}
		if t, ok := live[s.RoomID]; ok && !counts(s.Rules, loc, t.LiveStart, t.Title) {
			st = "live, does not count here"
		}
		fmt.Fprintf(&b, "• %s — %s (%s", roomName(s.Room), st, s.Mode)
		if rules := shortRules(s.Rules); rules != "" {
			fmt.Fprintf(&b, "; %s", rules)
		}
		b.WriteString(")\n")
	}
	return strings.TrimRight(b.String(), "\n"), nil
}

func (r *Router) status(ctx context.Context, req Request) (string, error) {
	tasks := r.recorder.List()
	recordingNow := 0
	for _, t := range tasks {
		if t.Live && t.Record && !t.Skipped {
			recordingNow++
		}
	}
	msg := fmt.Sprintf("Watching %d rooms, recording %d now.", len(tasks), recordingNow)
	if r.opts.DiskFree != nil {
		if free, err := r.opts.DiskFree(); err == nil {
			msg += fmt.Sprintf(" Disk free: %s.", formatBytes(int64(free)))
		}
	}
	if line := r.loginLine(); line != "" {
		msg += "\n" + line
	}
	return msg, nil
}

func modeVerb(mode storage.Mode) string {
	if mode == storage.Record {
		return "records"
	}
	return "watches"
}

// roomName names a room by anchor and title, as people know it.
func roomName(room storage.Room) string {
	switch {
	case room.Anchor != "" && room.Title != "":
		return fmt.Sprintf("%s — %s (room %d)", room.Anchor, room.Title, room.RoomID)
	case room.Anchor != "":
		return fmt.Sprintf("%s (room %d)", room.Anchor, room.RoomID)
	}
	return fmt.Sprintf("room %d", room.RoomID)
}

func firstWord(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return shorten(f[0], 32)
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
