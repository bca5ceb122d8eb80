package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"roomrec/recording"
	"roomrec/storage"
)

// Notifier turns recording events into database rows and chat messages:
// the archive index as files open and close, and alerts to every chat that
// follows a room, once per broadcast per chat even across restarts. The
// rows it writes queue the webhook events in the same transactions.
type Notifier struct {
	store    Store
	outbox   *Outbox
	log      *slog.Logger
	problems *problems
	// Account, when set, says whether roomrec is logged in to Bilibili, so
	// an alert for a stream below the quality asked for can say why.
	Account Account
}

// NewNotifier returns a Notifier writing to store and sending via outbox.
func NewNotifier(store Store, outbox *Outbox, logger *slog.Logger) *Notifier {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Notifier{store: store, outbox: outbox, log: logger, problems: newProblems()}
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
	log := n.log.With(slog.Int64("room", room.RoomID))
	var err error
	switch e := e.(type) {
	case recording.LiveStarted:
		err = n.liveStarted(ctx, e)
	case recording.RecordingStarted:
		_, err = n.store.StartRecordingSession(ctx, room.RoomID, e.LiveStart)
	case recording.RecordingEnded:
		err = n.store.EndRecordingSession(ctx, room.RoomID, e.RoomEnded)
	case recording.FileOpened:
		_, err = n.store.CreateRecording(ctx, storage.NewRecording{RoomID: room.RoomID, LiveStart: e.LiveStart, Path: e.Path, Title: e.Title, Started: e.Opened})
	case recording.FileClosed:
		if e.Err != nil {
			// Not finished on disk: it stays writing, so the archive
			// claims no file, until the crash check of the next start
			// finishes it.
			log.Warn("file not finished; left writing for the next start", slog.String("path", e.Path), slog.Any("err", e.Err))
			break
		}
		err = n.store.CompleteRecording(ctx, e.Path, storage.RecordingEnd{Size: e.Size, Duration: e.Duration, Ended: e.Closed, Interrupted: e.Interrupted, DanmakuPath: e.DanmakuPath})
	case recording.LiveEnded:
		err = n.liveEnded(ctx, e)
	case recording.TitleChanged:
		if err = n.store.UpdateRoom(ctx, storage.Room{RoomID: room.RoomID, Title: e.New}); err == nil {
			err = n.broadcast(ctx, room.RoomID, titleMessage(e))
		}
	case recording.TaskError:
		n.problem(e)
	case recording.TaskRecovered:
		n.recovered(e)
	}
	if err != nil {
		log.Error("event not recorded", slog.String("event", eventName(e)), slog.Any("err", err))
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
	if err := n.store.UpdateRoom(ctx, storage.Room{RoomID: e.RoomID, ShortID: e.ShortID, Anchor: e.Anchor, Title: e.Title, Cover: e.Cover,
		Area: e.Area, ParentArea: e.ParentArea}); err != nil {
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
	for _, sub := range subs {
		first, err := n.store.ClaimAlert(ctx, ls.ID, sub.ID)
		if err != nil {
			return err
		}
		if !first {
			continue // already alerted for this broadcast: LIVE twice, a restart
		}
		// A watch-only chat is not told "recording", even if another
		// chat records the room.
		m := liveMessage(e, e.Record && sub.Mode == storage.Record, n.loggedIn())
		chatID, sessionID := sub.ID, ls.ID
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
				n.log.Warn("alert message id not kept; the end will be a new message", slog.Any("err", err))
			}
		})
	}
	return nil
}

// loggedIn reports whether Bilibili serves roomrec as a logged-in account.
func (n *Notifier) loggedIn() bool {
	return n.Account != nil && n.Account.Status().LoggedIn
}

func (n *Notifier) liveEnded(ctx context.Context, e recording.LiveEnded) error {
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
