package bot

import (
	"context"
	"strings"
	"time"

	"roomrec/bilibili"

	"roomrec/recording"
	"roomrec/storage"
)

// Chat is where a command came from and where replies and alerts go.
type Chat struct {
	Platform storage.Platform
	ID       string // the platform's id for the chat
	Title    string
	Private  bool // a one-to-one chat, whose user is its own admin
	// ToUser says that ID is a user's id, not a chat's: the message goes
	// to that user's private chat with the bot, which the platform opens
	// if there is none yet (Discord), or which has the user's id already
	// (Telegram). Such a chat is never stored; it is how roomrec reaches
	// a user, such as an owner, outside any command. See UserChat.
	ToUser bool
}

// UserChat returns the private chat that reaches the user with the
// platform's userID directly, as Request.UserID names them.
func UserChat(platform storage.Platform, userID string) Chat {
	return Chat{Platform: platform, ID: userID, Private: true, ToUser: true}
}

// Request is one incoming command.
type Request struct {
	Chat Chat
	User string // who sent it, by name, for the record
	// UserID is the sender's id on the platform (Telegram's user id in
	// decimal, Discord's user snowflake), for checks that must not trust
	// a name, such as who may /login. It is empty when no user sent the
	// command (a Telegram message sent on behalf of a chat).
	UserID string
	// Text is the whole message, starting with the command, from a
	// platform where commands are text (Telegram, the console). Handle
	// reads it against Commands.
	Text string
	// Command and Options are a command from a platform that renders
	// Commands as typed forms (Discord): its name, a subcommand's as
	// "archive keep", and each option given by the name of its Arg,
	// valued as its ArgKind says (string, int64 or bool). A Command wins
	// over Text.
	Command string
	Options map[string]any
	// IsAdmin says whether the sender may change the chat's rooms. It is
	// asked only for commands that need it, since it may cost a call to
	// the platform.
	IsAdmin func(ctx context.Context) (bool, error)
}

// Reply is the answer to a Request.
type Reply struct {
	Text string
	// Private marks refusals and errors, which platforms that can show a
	// reply to one person only (Discord) keep to the caller.
	Private bool
}

// Message is something the bot sends on its own: an alert or a notice.
type Message struct {
	Text     string
	PhotoURL string // shown with the text where the platform can
	// Photo is a PNG to upload and show with the text, such as a QR code
	// only roomrec has; it wins over PhotoURL. PhotoName is its file name
	// (letters, digits, '.', '-', '_'), "image.png" when empty. Edits
	// change the text, never the picture: the picture a message was sent
	// with stays. Discord shows it inside the text only while the edit
	// names it too (the same Photo and PhotoName; it is not uploaded
	// again). With a photo the text is a caption, which Telegram limits
	// to 1024 characters.
	Photo     []byte
	PhotoName string
	LinkURL   string // a button or link to open
	LinkLabel string
	ReplyTo   string // the platform's id of the message this answers, if any
}

// PhotoFileName is the file name m.Photo is uploaded under: PhotoName,
// "image.png" when it is empty, with every character but ASCII letters,
// digits, '.', '-' and '_' made '_'. Discord renames files with other
// characters, and a message that shows its picture by file name would then
// show none.
func (m Message) PhotoFileName() string {
	if m.PhotoName == "" {
		return "image.png"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, m.PhotoName)
}

// Sender delivers messages on one platform. Each platform package
// implements it.
type Sender interface {
	// Send sends m to chat and returns the platform's id for the message.
	Send(ctx context.Context, chat Chat, m Message) (string, error)
	// Edit replaces a message sent before. Platforms that cannot edit
	// return ErrCannotEdit, and the caller sends a follow-up instead.
	Edit(ctx context.Context, chat Chat, messageID string, m Message) error
}

// Recorder is what the bot needs of the recording Manager.
type Recorder interface {
	AcquireRoom(room recording.Room, record bool) (*recording.Task, error)
	Release(roomID int64, record bool) error
	// Recheck has the broadcast in progress judged again by the gate, as
	// after its rules changed.
	Recheck(roomID int64)
	List() []recording.TaskInfo
}

// Rooms finds a room on Bilibili by short or real id, with its anchor and
// title, for replies that name it. *bilibili.Client implements it.
type Rooms interface {
	RoomInfo(ctx context.Context, id int64) (bilibili.RoomInfo, error)
}

// The database, as each part of bot uses it. *storage.Store implements
// every one; tests fake only what they use.

// RouterStore is what the Router needs of the database: the chats, their
// subscriptions and rules, and their archives.
type RouterStore interface {
	EnsureChat(ctx context.Context, c storage.Chat) (storage.Chat, error)
	Subscribe(ctx context.Context, chatID int64, room storage.Room, mode storage.Mode, addedBy string) (bool, error)
	Unsubscribe(ctx context.Context, chatID, roomID int64) (storage.Subscription, error)
	ChatSubscriptions(ctx context.Context, chatID int64) ([]storage.Subscription, error)
	SetRules(ctx context.Context, chatID, roomID int64, r storage.Rules) error
	MigrateChat(ctx context.Context, platform storage.Platform, oldID, newID string) error
	// SubscribedRooms and RoomSubscribers are what Resume reads.
	SubscribedRooms(ctx context.Context) ([]storage.RoomWant, error)
	Subscribers
	ArchiveStore
}

// ArchiveStore is what /archive (and its suggestions) needs: a chat's recordings and how long
// it keeps them.
type ArchiveStore interface {
	Archive(ctx context.Context, chatID int64, q storage.ArchiveQuery) (storage.ArchivePage, error)
	ArchiveItem(ctx context.Context, chatID, recordingID int64) (storage.Recording, error)
	DeleteFromArchive(ctx context.Context, chatID, recordingID int64) (bool, error)
	ChatRetention(ctx context.Context, chatID int64) (storage.Retention, error)
	SetChatRetention(ctx context.Context, chatID int64, r storage.Retention) error
	ApplyChatRetention(ctx context.Context, chat storage.Chat, server storage.Retention) (storage.Pruned, error)
}

// Subscribers lists the chats that follow a room, with their modes and
// rules: what the Gate reads.
type Subscribers interface {
	RoomSubscribers(ctx context.Context, roomID int64) ([]storage.Subscriber, error)
}

// NotifierStore is what the Notifier needs of the database: the rooms'
// broadcasts, the alerts sent for them, and the archive index as files
// open and close.
type NotifierStore interface {
	Subscribers
	UpdateRoom(ctx context.Context, room storage.Room) error
	StartLiveSession(ctx context.Context, roomID int64, liveStart time.Time, liveKey, title string) (storage.LiveSession, error)
	ClaimAlert(ctx context.Context, sessionID, chatID int64) (bool, error)
	AlertedChats(ctx context.Context, sessionID int64) ([]int64, error)
	SetAlertMessage(ctx context.Context, sessionID, chatID int64, messageID string) error
	EndLiveSession(ctx context.Context, roomID int64, liveStart, ended time.Time) ([]storage.Alert, error)
	StartRecordingSession(ctx context.Context, roomID int64, liveStart time.Time) (storage.RecordingSession, error)
	EndRecordingSession(ctx context.Context, roomID int64, roomEnded bool) error
	CreateRecording(ctx context.Context, nr storage.NewRecording) (storage.Recording, error)
	CompleteRecording(ctx context.Context, path string, end storage.RecordingEnd) error
}
