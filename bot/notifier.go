package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"roomrec"
	"roomrec/recording"
	"roomrec/storage"
)

// Notifier turns recording events into database rows and chat messages:
// the archive index as files open and close, and alerts to every chat that
// follows a room, once per broadcast per chat even across restarts. A
// chat's rules (/rules) decide which broadcasts it hears of and keeps. The
// rows it writes queue the webhook events in the same transactions.
type Notifier struct {
	store    NotifierStore
	outbox   *Outbox
	log      *slog.Logger
	problems *problems
	// Account, when set, says whether roomrec is logged in to Bilibili, so
	// an alert for a stream below the quality asked for can say why.
	Account Account
	// Location is the clock of the rules' hours (ROOMREC_TIMEZONE);
	// Shanghai when nil.
	Location *time.Location

	// live is each room's broadcast in progress as it was announced, for
	// the alert a title change brings to a chat it makes count. Only
	// Handle uses it, one event at a time.
	live map[int64]recording.LiveStarted
}

// NewNotifier returns a Notifier writing to store and sending via outbox.
func NewNotifier(store NotifierStore, outbox *Outbox, logger *slog.Logger) *Notifier {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Notifier{store: store, outbox: outbox, log: logger, problems: newProblems(), live: map[int64]recording.LiveStarted{}}
}

// Close stops the notifier's own timers (notices waiting for a condition
// to last) and waits for one that is acting, so nothing of the notifier
// touches the store or the outbox after it returns. Call it once the
// recorder delivers no more events.
func (n *Notifier) Close() {
	n.problems.close()
}

// storeTimeout bounds each database call of an event; the database is
// local, so anything longer is a fault to log, not to wait out.
const storeTimeout = 10 * time.Second

// Handle takes one event. It is the recording Manager's event callback.
func (n *Notifier) Handle(e recording.Event) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	room := e.EventRoom()
	log := n.log.With(roomrec.LogRoom(room.RoomID))
	var err error
	switch e := e.(type) {
	case recording.LiveStarted:
		err = n.liveStarted(ctx, e)
	case recording.RecordingStarted:
		_, err = n.store.StartRecordingSession(ctx, room.RoomID, e.LiveStart)
	case recording.RecordingEnded:
		err = n.store.EndRecordingSession(ctx, room.RoomID, e.RoomEnded)
	case recording.FileOpened:
		err = n.fileOpened(ctx, e)
	case recording.FileClosed:
		if e.Err != nil {
			// Not finished on disk: it stays writing, so the archive
			// claims no file, until the crash check of the next start
			// finishes it.
			log.Warn("file not finished; left writing for the next start", slog.String(roomrec.KeyPath, e.Path), roomrec.LogErr(e.Err))
			break
		}
		err = n.store.CompleteRecording(ctx, e.Path, storage.RecordingEnd{Size: e.Size, Duration: e.Duration, Ended: e.Closed, Interrupted: e.Interrupted, DanmakuPath: e.DanmakuPath})
	case recording.LiveEnded:
		err = n.liveEnded(ctx, e)
	case recording.TitleChanged:
		if err = n.store.UpdateRoom(ctx, storage.Room{RoomID: room.RoomID, Title: e.New}); err != nil {
			break
		}
		if e.LiveStart.IsZero() {
			err = n.broadcast(ctx, room.RoomID, titleMessage(e))
		} else {
			err = n.titleChanged(ctx, e)
		}
	case recording.TaskError:
		n.problem(e)
	case recording.TaskRecovered:
		n.recovered(e)
	}
	if err != nil {
		log.Error("event not recorded", slog.String(roomrec.KeyEvent, eventName(e)), roomrec.LogErr(err))
	}
}

func eventName(e recording.Event) string {
	switch e.(type) {
	case recording.LiveStarted:
		return "live started"
	case recording.RecordingStarted:
		return "recording started"
	case recording.RecordingEnded:
		return "recording ended"
	case recording.FileOpened:
		return "file opened"
	case recording.FileClosed:
		return "file closed"
	case recording.LiveEnded:
		return "live ended"
	case recording.TitleChanged:
		return "title changed"
	case recording.TaskError:
		return "task error"
	}
	return "event"
}

func (n *Notifier) liveStarted(ctx context.Context, e recording.LiveStarted) error {
	if err := n.store.UpdateRoom(ctx, liveRoom(e)); err != nil {
		return err
	}
	ls, err := n.store.StartLiveSession(ctx, e.RoomID, e.LiveStart, e.LiveKey, e.Title)
	if err != nil {
		return err
	}
	subs, err := n.store.RoomSubscribers(ctx, e.RoomID)
	if err != nil {
		return err
	}
	n.live[e.RoomID] = e
	for _, sub := range subs {
		if !n.counts(sub, e.LiveStart, e.Title) {
			continue // the chat's rules leave this broadcast out
		}
		if _, err := n.alert(ctx, ls.ID, sub, e); err != nil {
			return err
		}
	}
	return nil
}

// counts reports whether a broadcast counts for a subscriber under its
// rules.
func (n *Notifier) counts(sub storage.Subscriber, start time.Time, title string) bool {
	return counts(sub.Rules, orShanghai(n.Location), start, title)
}

// alert sends a chat the alert for a broadcast, unless it has had it
// (LIVE twice, a restart), and reports whether it was sent.
func (n *Notifier) alert(ctx context.Context, sessionID int64, sub storage.Subscriber, e recording.LiveStarted) (bool, error) {
	first, err := n.store.ClaimAlert(ctx, sessionID, sub.ID)
	if err != nil || !first {
		return false, err
	}
	// A watch-only chat is not told "recording", even if another chat
	// records the room.
	m := liveMessage(e, e.Record && sub.Mode == storage.Record, n.loggedIn())
	chatID := sub.ID
	n.outbox.Send(botChat(sub.Chat), m, func(id string, err error) {
		var rejected *Rejected
		switch {
		case err == nil:
		case errors.As(err, &rejected):
			// The chat will not take it (the bot was removed): not
			// worth another try after a restart, nor an end message.
			id = storage.AlertRejected
		default:
			return // unsent: the next start may claim it again
		}
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		if err := n.store.SetAlertMessage(ctx, sessionID, chatID, id); err != nil {
			n.log.Warn("alert message id not kept; the end will be a new message", roomrec.LogErr(err))
		}
	})
	return true, nil
}

// titleChanged tells the chats of a live room about a new title, which
// may change which chats the broadcast counts for: a chat it now counts
// for and that has had no alert gets the alert, one that was alerted gets
// the new title, and one that was alerted but whose rules now leave the
// broadcast out hears that it no longer counts. The others hear nothing.
func (n *Notifier) titleChanged(ctx context.Context, e recording.TitleChanged) error {
	ls, err := n.store.StartLiveSession(ctx, e.RoomID, e.LiveStart, "", e.New)
	if err != nil {
		return err
	}
	subs, err := n.store.RoomSubscribers(ctx, e.RoomID)
	if err != nil {
		return err
	}
	alerted, err := n.store.AlertedChats(ctx, ls.ID)
	if err != nil {
		return err
	}
	// The alert a title change brings is the broadcast's, with the new
	// title; the stream is named only if it was known to be recorded.
	started, ok := n.live[e.RoomID]
	if !ok || !started.LiveStart.Equal(e.LiveStart) {
		started = recording.LiveStarted{Room: e.Room, LiveStart: e.LiveStart}
	}
	if !started.Record {
		started.Stream = recording.Stream{}
	}
	started.Title, started.Record = e.New, e.Record
	n.live[e.RoomID] = started
	for _, sub := range subs {
		if !n.counts(sub, e.LiveStart, e.New) {
			if slices.Contains(alerted, sub.ID) {
				n.outbox.Send(botChat(sub.Chat), uncountedMessage(e, sub), nil)
			}
			continue
		}
		sent, err := n.alert(ctx, ls.ID, sub, started)
		if err != nil {
			return err
		}
		if !sent {
			n.outbox.Send(botChat(sub.Chat), titleMessage(e), nil)
		}
	}
	return nil
}

// fileOpened indexes a new file in the archives of the chats that record
// the room and count the broadcast now. A chat that stops counting it later
// keeps the files it has, as after /stop.
func (n *Notifier) fileOpened(ctx context.Context, e recording.FileOpened) error {
	subs, err := n.store.RoomSubscribers(ctx, e.RoomID)
	if err != nil {
		return err
	}
	chats := []int64{}
	for _, sub := range subs {
		if sub.Mode == storage.Record && n.counts(sub, e.LiveStart, e.Title) {
			chats = append(chats, sub.ID)
		}
	}
	_, err = n.store.CreateRecording(ctx, storage.NewRecording{RoomID: e.RoomID, LiveStart: e.LiveStart, Path: e.Path, Title: e.Title, Started: e.Opened, Chats: chats})
	return err
}

// loggedIn reports whether Bilibili serves roomrec as a logged-in account.
func (n *Notifier) loggedIn() bool {
	return n.Account != nil && n.Account.Status().LoggedIn
}

func (n *Notifier) liveEnded(ctx context.Context, e recording.LiveEnded) error {
	delete(n.live, e.RoomID)
	alerts, err := n.store.EndLiveSession(ctx, e.RoomID, e.LiveStart, e.LiveStart.Add(e.Duration))
	if err != nil {
		return err
	}
	m := endedMessage(e)
	for _, a := range alerts {
		if a.MessageID == storage.AlertRejected {
			continue
		}
		if a.MessageID != "" {
			n.outbox.Edit(botChat(a.Chat), a.MessageID, m)
		} else {
			n.outbox.Send(botChat(a.Chat), m, nil)
		}
	}
	return nil
}

// broadcast sends m to every chat that follows a room.
func (n *Notifier) broadcast(ctx context.Context, roomID int64, m Message) error {
	subs, err := n.store.RoomSubscribers(ctx, roomID)
	if err != nil {
		return err
	}
	for _, sub := range subs {
		n.outbox.Send(botChat(sub.Chat), m, nil)
	}
	return nil
}

func botChat(c storage.Chat) Chat {
	return Chat{Platform: c.Platform, ID: c.PlatformID, Title: c.Title}
}

// Pruned tells a chat what retention removed from its archive.
func (n *Notifier) Pruned(p storage.Pruned) {
	var names []string
	for i, rec := range p.Recordings {
		if i == 5 {
			names = append(names, fmt.Sprintf("and %d more", len(p.Recordings)-5))
			break
		}
		names = append(names, fmt.Sprintf("#%d %s", rec.ID, rec.Title))
	}
	text := fmt.Sprintf("🧹 Retention removed %d recording(s) from this chat's archive: %s.", len(p.Recordings), strings.Join(names, ", "))
	if p.Freed > 0 {
		text += fmt.Sprintf(" %s freed on disk.", formatBytes(p.Freed))
	}
	n.outbox.Send(botChat(p.Chat), Message{Text: text}, nil)
}
