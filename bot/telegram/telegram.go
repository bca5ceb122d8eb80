// Package telegram connects the bot core to Telegram through the Bot API:
// it turns updates into bot requests and bot messages into API calls. All
// command logic is in package bot.
package telegram

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"

	"roomrec"
	"roomrec/bot"
	"roomrec/storage"
)

// pollTimeout is how long one getUpdates call waits for news. Cancelling
// the context aborts it at once, so it only bounds idle traffic.
const pollTimeout = 50

// Handler answers a request; *bot.Router implements it.
type Handler interface {
	Handle(ctx context.Context, req bot.Request) bot.Reply
}

// ChatMigrator moves a chat's data to a new id; *bot.Router implements it.
type ChatMigrator interface {
	MigrateChat(ctx context.Context, platform storage.Platform, oldID, newID string) error
}

// Bot is a running Telegram bot.
type Bot struct {
	api      *tgbotapi.BotAPI
	handler  Handler
	migrator ChatMigrator
	log      *slog.Logger
	replies  *bot.Outbox   // see Options.Replies
	timeout  time.Duration // see Options.SendTimeout
	mu       sync.Mutex
	ctx      context.Context // set by Run: the long poll ends with it; guarded by mu
	polling  atomic.Bool     // the last getUpdates succeeded
}

// Options configure a Bot.
type Options struct {
	Token string
	// Endpoint is the Bot API's address, a format with two %s for the
	// token and the method (TELEGRAM_API_ENDPOINT); the library's default
	// when empty.
	Endpoint   string
	HTTPClient *http.Client // http.DefaultTransport's, when nil
	Logger     *slog.Logger // discards when nil
	// Replies, when set, carries command replies, so they share the
	// chat's rate limit with alerts and wait out a 429 like any message.
	// Without it (tests of this package alone) replies go out directly.
	Replies *bot.Outbox
	// SendTimeout bounds every Bot API call but the long poll; 15 s when
	// zero.
	SendTimeout time.Duration
}

// defaultSendTimeout is Options.SendTimeout's default.
const defaultSendTimeout = 15 * time.Second

// Connected reports whether the last long poll reached Telegram.
func (b *Bot) Connected() bool { return b.polling.Load() }

// New connects to the Bot API at opts.Endpoint and checks the token with
// getMe; it returns an error, without the token, if getMe fails. The http
// client's requests are bound to Run's context, so shutdown aborts a long
// poll.
func New(opts Options, handler Handler, migrator ChatMigrator) (*Bot, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	endpoint := opts.Endpoint
	if endpoint == "" {
		endpoint = tgbotapi.APIEndpoint
	}
	b := &Bot{handler: handler, migrator: migrator, log: logger, replies: opts.Replies, timeout: cmp.Or(opts.SendTimeout, defaultSendTimeout), ctx: context.Background()}
	client := &http.Client{Transport: contextTransport{b: b, base: transportOf(hc)}, Timeout: (pollTimeout + 15) * time.Second}
	api, err := tgbotapi.NewBotAPIWithClient(opts.Token, endpoint, client)
	if err != nil {
		// The library's error may quote the URL, which holds the token.
		return nil, fmt.Errorf("telegram: getMe failed; check TELEGRAM_BOT_TOKEN and TELEGRAM_API_ENDPOINT: %s", redact(err.Error(), opts.Token))
	}
	b.api = api
	return b, nil
}

func transportOf(hc *http.Client) http.RoundTripper {
	if hc.Transport != nil {
		return hc.Transport
	}
	return http.DefaultTransport
}

func redact(s, token string) string {
	if token == "" {
		return s
	}
	return strings.ReplaceAll(s, token, "<token>")
}

// contextTransport binds the long poll to the bot's run context, so
// shutdown does not wait out a 50 s getUpdates. (The library takes no
// context.) Sends and edits are not bound: the outbox still delivers
// while roomrec finishes its files after the poll has stopped.
type contextTransport struct {
	b    *Bot
	base http.RoundTripper
}

func (t contextTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasSuffix(req.URL.Path, "/getUpdates") {
		// The library passes no context, so each call gets a deadline
		// here: a send stuck on the network must not hold a chat's queue,
		// or shutdown, for the client's long-poll-sized timeout.
		ctx, cancel := context.WithTimeout(req.Context(), t.b.timeout)
		resp, err := t.base.RoundTrip(req.WithContext(ctx))
		if err != nil {
			cancel()
			return nil, err
		}
		resp.Body = cancelOnClose{resp.Body, cancel}
		return resp, nil
	}
	t.b.mu.Lock()
	ctx := t.b.ctx
	t.b.mu.Unlock()
	return t.base.RoundTrip(req.WithContext(ctx))
}

// cancelOnClose releases a request's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// Username returns the bot's @name.
func (b *Bot) Username() string { return b.api.Self.UserName }

// Run sets the command menu, then long-polls for updates and answers
// commands until ctx ends. Each update is handled in its own goroutine, so a
// slow command does not hold up the others; Run waits for them before it
// returns.
func (b *Bot) Run(ctx context.Context) error {
	b.mu.Lock()
	b.ctx = ctx
	b.mu.Unlock()
	var commands []tgbotapi.BotCommand
	for _, c := range bot.Commands {
		commands = append(commands, tgbotapi.BotCommand{Command: c.Name, Description: c.Help})
	}
	if _, err := b.api.Request(tgbotapi.NewSetMyCommands(commands...)); err != nil && ctx.Err() == nil {
		b.log.Warn("telegram: command menu not set", roomrec.LogErr(err))
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	offset, failures := 0, 0
	for ctx.Err() == nil {
		updates, err := b.api.GetUpdates(tgbotapi.UpdateConfig{Offset: offset, Timeout: pollTimeout, AllowedUpdates: []string{"message"}})
		b.polling.Store(err == nil)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			failures++
			wait := min(time.Duration(failures)*time.Second, 30*time.Second)
			b.log.Warn("telegram: getUpdates failed; retrying", roomrec.LogRetryIn(wait), slog.String(roomrec.KeyErr, redact(err.Error(), b.api.Token)))
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			continue
		}
		failures = 0
		for _, u := range updates {
			offset = max(offset, u.UpdateID+1)
			if u.Message == nil {
				continue
			}
			m := u.Message
			wg.Go(func() { b.handleMessage(ctx, m) })
		}
	}
	b.confirm(offset)
	return nil
}

// confirm tells Telegram the updates before offset are handled. Telegram
// counts an update as confirmed only when a later getUpdates asks from
// past it, so without this the next start would answer the last commands
// again.
func (b *Bot) confirm(offset int) {
	if offset == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	b.mu.Lock()
	b.ctx = ctx
	b.mu.Unlock()
	if _, err := b.api.GetUpdates(tgbotapi.UpdateConfig{Offset: offset, Limit: 1, Timeout: 0}); err != nil {
		b.log.Warn("telegram: could not confirm the last updates; the next start may answer them again", roomrec.LogErr(err))
	}
}

// handleMessage answers one message if it is a command for this bot.
func (b *Bot) handleMessage(ctx context.Context, m *tgbotapi.Message) {
	chatID := strconv.FormatInt(m.Chat.ID, 10)
	if m.MigrateToChatID != 0 {
		// The group became a supergroup with a new id: its rooms and
		// archive follow it.
		newID := strconv.FormatInt(m.MigrateToChatID, 10)
		if err := b.migrator.MigrateChat(ctx, storage.Telegram, chatID, newID); err != nil {
			b.log.Error("telegram: chat migration failed", slog.String("from", chatID), slog.String("to", newID), roomrec.LogErr(err))
		}
		return
	}
	text, ok := b.commandText(m)
	if !ok {
		return
	}
	user, userID := "", ""
	if m.From != nil {
		user = m.From.UserName
		if user == "" {
			user = strings.TrimSpace(m.From.FirstName + " " + m.From.LastName)
		}
		// A message sent on behalf of a chat (an anonymous admin, a
		// channel) comes From a stand-in bot that Telegram shares
		// between all such messages: no user sent it.
		if m.SenderChat == nil {
			userID = strconv.FormatInt(m.From.ID, 10)
		}
	}
	req := bot.Request{
		Chat:   bot.Chat{Platform: storage.Telegram, ID: chatID, Title: m.Chat.Title, Private: m.Chat.IsPrivate()},
		User:   user,
		UserID: userID,
		Text:   text,
		IsAdmin: func(ctx context.Context) (bool, error) {
			return b.isAdmin(m)
		},
	}
	reply := b.handler.Handle(ctx, req)
	msg := bot.Message{Text: reply.Text, ReplyTo: strconv.Itoa(m.MessageID)}
	if b.replies != nil {
		b.replies.Send(req.Chat, msg, nil)
		return
	}
	if _, err := b.Send(ctx, req.Chat, msg); err != nil && ctx.Err() == nil {
		b.log.Warn("telegram: reply not sent", roomrec.LogChat(req.Chat.Platform, req.Chat.ID), roomrec.LogErr(err))
	}
}

// commandText returns the command in a message, with a "@thisbot" suffix
// removed. A command addressed to another bot is not ours.
func (b *Bot) commandText(m *tgbotapi.Message) (string, bool) {
	if !m.IsCommand() {
		return "", false
	}
	first, rest, _ := strings.Cut(m.Text, " ")
	if name, at, found := strings.Cut(first, "@"); found {
		if !strings.EqualFold(at, b.api.Self.UserName) {
			return "", false
		}
		first = name
	}
	return strings.TrimSpace(first + " " + rest), true
}

// isAdmin asks Telegram whether the sender administers the chat. A message
// sent as the group itself comes from an anonymous admin.
func (b *Bot) isAdmin(m *tgbotapi.Message) (bool, error) {
	if m.SenderChat != nil && m.SenderChat.ID == m.Chat.ID {
		return true, nil
	}
	if m.From == nil {
		return false, nil
	}
	member, err := b.api.GetChatMember(tgbotapi.GetChatMemberConfig{ChatConfigWithUser: tgbotapi.ChatConfigWithUser{ChatID: m.Chat.ID, UserID: m.From.ID}})
	if err != nil {
		return false, fmt.Errorf("getChatMember: %w", err)
	}
	return member.IsCreator() || member.IsAdministrator(), nil
}

// Message ids carry the kind of message, since a photo's text is edited
// as a caption and a text message's as text.
const (
	photoPrefix = "p"
	textPrefix  = "t"
)

// Send sends a bot message: a photo with a caption when there is a picture
// (uploaded, or a cover Telegram fetches itself), text otherwise, with a
// button to open the room. A chat that is a user (bot.Chat.ToUser) needs
// nothing more: a user's private chat with the bot has the user's id.
func (b *Bot) Send(ctx context.Context, chat bot.Chat, m bot.Message) (string, error) {
	id, err := strconv.ParseInt(chat.ID, 10, 64)
	if err != nil {
		return "", fmt.Errorf("telegram chat id %q: %w", chat.ID, err)
	}
	var c tgbotapi.Chattable
	prefix := textPrefix
	byURL := false
	switch {
	case len(m.Photo) > 0:
		c, prefix = photoMessage(id, tgbotapi.FileBytes{Name: m.PhotoFileName(), Bytes: m.Photo}, m), photoPrefix
	case m.PhotoURL != "":
		c, prefix, byURL = photoMessage(id, tgbotapi.FileURL(m.PhotoURL), m), photoPrefix, true
	default:
		c = textMessage(id, m)
	}
	sent, err := b.api.Send(c)
	if err != nil && byURL && isCode(err, http.StatusBadRequest) {
		// Telegram fetches the cover itself and sometimes cannot; the
		// alert matters more than its picture. A picture roomrec uploads
		// (a QR code) is the message itself, so it has no such fallback.
		b.log.Warn("telegram: cover refused; sending the alert as text", slog.String("cover", m.PhotoURL), roomrec.LogErr(err))
		sent, err = b.api.Send(textMessage(id, m))
		prefix = textPrefix
	}
	if err != nil {
		return "", apiError(err)
	}
	return prefix + strconv.Itoa(sent.MessageID), nil
}

// photoMessage is m as a photo with its text as the caption.
func photoMessage(chatID int64, photo tgbotapi.RequestFileData, m bot.Message) tgbotapi.PhotoConfig {
	p := tgbotapi.NewPhoto(chatID, photo)
	p.Caption = m.Text
	p.ReplyMarkup = keyboard(m)
	replyTo(&p.BaseChat, m)
	return p
}

// textMessage is m as a text message, without link previews.
func textMessage(chatID int64, m bot.Message) tgbotapi.MessageConfig {
	t := tgbotapi.NewMessage(chatID, m.Text)
	t.DisableWebPagePreview = true
	t.ReplyMarkup = keyboard(m)
	replyTo(&t.BaseChat, m)
	return t
}

// replyTo makes the message answer m.ReplyTo, if it names one.
func replyTo(c *tgbotapi.BaseChat, m bot.Message) {
	if id, err := strconv.Atoi(m.ReplyTo); err == nil {
		// A command deleted before the answer came still gets it.
		c.ReplyToMessageID, c.AllowSendingWithoutReply = id, true
	}
}

// Edit replaces a message's text or caption. A photo's picture stays as
// it was sent, whatever the new message's Photo or PhotoURL.
func (b *Bot) Edit(ctx context.Context, chat bot.Chat, messageID string, m bot.Message) error {
	id, err := strconv.ParseInt(chat.ID, 10, 64)
	if err != nil {
		return fmt.Errorf("telegram chat id %q: %w", chat.ID, err)
	}
	if len(messageID) < 2 {
		return bot.ErrCannotEdit
	}
	msgID, err := strconv.Atoi(messageID[1:])
	if err != nil {
		return bot.ErrCannotEdit
	}
	markup := keyboard(m)
	var c tgbotapi.Chattable
	switch messageID[:1] {
	case photoPrefix:
		e := tgbotapi.NewEditMessageCaption(id, msgID, m.Text)
		e.ReplyMarkup = markup
		c = e
	case textPrefix:
		e := tgbotapi.NewEditMessageText(id, msgID, m.Text)
		e.ReplyMarkup = markup
		e.DisableWebPagePreview = true
		c = e
	default:
		return bot.ErrCannotEdit
	}
	// Request, not Send: edits can answer true instead of a message.
	_, err = b.api.Request(c)
	switch {
	case err == nil:
		return nil
	case isCode(err, http.StatusBadRequest) && strings.Contains(err.Error(), "message is not modified"):
		return nil // already says this: a retry after a lost answer
	case isCode(err, http.StatusBadRequest) && (strings.Contains(err.Error(), "message to edit not found") || strings.Contains(err.Error(), "message can't be edited")):
		return bot.ErrCannotEdit // deleted by an admin, or too old: a follow-up instead
	}
	return apiError(err)
}

func keyboard(m bot.Message) *tgbotapi.InlineKeyboardMarkup {
	if m.LinkURL == "" {
		return nil
	}
	k := tgbotapi.NewInlineKeyboardMarkup(tgbotapi.NewInlineKeyboardRow(tgbotapi.NewInlineKeyboardButtonURL(m.LinkLabel, m.LinkURL)))
	return &k
}

// apiError turns Telegram's "too many requests" into bot.RetryAfter, and
// the answers it would give again on every try (400 bad request, 403 bot
// removed or not allowed to post) into bot.Rejected. Anything else, such
// as a network error or a 5xx, is worth retrying.
func apiError(err error) error {
	var te *tgbotapi.Error
	switch {
	case errors.As(err, &te) && te.RetryAfter > 0:
		return &bot.RetryAfter{Wait: time.Duration(te.RetryAfter) * time.Second}
	case isCode(err, http.StatusBadRequest), isCode(err, http.StatusForbidden):
		return &bot.Rejected{Err: err}
	}
	return err
}

// isCode reports whether err is a Telegram API error with the given code.
func isCode(err error, code int) bool {
	var te *tgbotapi.Error
	if !errors.As(err, &te) {
		return false
	}
	if te.Code != 0 {
		return te.Code == code
	}
	// The library leaves the code out of the errors of uploads
	// (UploadFiles, as for an uploaded photo), so it is read from the
	// description, which Telegram starts with the status's name.
	prefix, ok := statusPrefixes[code]
	return ok && strings.HasPrefix(te.Message, prefix)
}

// statusPrefixes begin Telegram's error descriptions, by status.
var statusPrefixes = map[int]string{
	http.StatusBadRequest: "Bad Request: ",
	http.StatusForbidden:  "Forbidden: ",
}

var _ bot.Sender = (*Bot)(nil)
