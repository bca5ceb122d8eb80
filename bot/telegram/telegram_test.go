package telegram_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"roomrec/bot"
	"roomrec/bot/telegram"
	"roomrec/bot/telegram/telegramtest"
	"roomrec/storage"
)

const token = "42:secret-token"

// recorder is a Handler and ChatMigrator that keeps what it was asked.
type recorder struct {
	mu       sync.Mutex
	requests []bot.Request
	admin    []bool
	migrated [][2]string
}

func (r *recorder) Handle(ctx context.Context, req bot.Request) bot.Reply {
	isAdmin, err := req.IsAdmin(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, req)
	r.admin = append(r.admin, isAdmin && err == nil)
	return bot.Reply{Text: "ok: " + req.Text}
}

func (r *recorder) MigrateChat(_ context.Context, platform storage.Platform, oldID, newID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.migrated = append(r.migrated, [2]string{oldID, newID})
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.requests) + len(r.migrated)
}

// start runs a bot against a new fake Bot API until the test ends.
func start(t *testing.T) (*telegramtest.Server, *telegram.Bot, *recorder) {
	t.Helper()
	return startWith(t, telegram.Options{})
}

// startWith is start with the bot's options (but its token and endpoint).
func startWith(t *testing.T, opts telegram.Options) (*telegramtest.Server, *telegram.Bot, *recorder) {
	t.Helper()
	fake := telegramtest.Start(t, token)
	b, rec, stop := runWith(t, fake, opts)
	t.Cleanup(stop)
	return fake, b, rec
}

// run runs a bot against fake; stop ends Run and checks it ends promptly.
func run(t *testing.T, fake *telegramtest.Server) (b *telegram.Bot, rec *recorder, stop func()) {
	t.Helper()
	return runWith(t, fake, telegram.Options{})
}

// runWith is run with the bot's options (but its token and endpoint).
func runWith(t *testing.T, fake *telegramtest.Server, opts telegram.Options) (b *telegram.Bot, rec *recorder, stop func()) {
	t.Helper()
	rec = &recorder{}
	opts.Token, opts.Endpoint = token, fake.Endpoint()
	b, err := telegram.New(opts, rec, rec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	return b, rec, func() {
		cancel()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			t.Error("Run did not stop promptly when its context ended")
		}
	}
}

func wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCommandsAdminsAndMigration(t *testing.T) {
	fake, b, rec := start(t)
	if b.Username() != telegramtest.BotUsername {
		t.Errorf("username %q", b.Username())
	}
	fake.SetAdmin(-100, 5)
	fake.Command(-100, "supergroup", 5, "/list@"+telegramtest.BotUsername+" extra")
	fake.Command(-100, "supergroup", 6, "/record 1")
	fake.CommandAsChat(-100, "/stop 1")
	fake.Command(-100, "supergroup", 5, "just chatting")
	fake.Command(-100, "supergroup", 5, "/list@another_bot")
	fake.Migrate(-100, -1009)
	wait(t, "three commands and a migration", func() bool { return rec.count() == 4 })
	time.Sleep(200 * time.Millisecond) // nothing else comes

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.requests) != 3 {
		t.Fatalf("handled %d requests, want 3 (not the chat message, not the other bot's command)", len(rec.requests))
	}
	byText := map[string]bool{}
	for i, req := range rec.requests {
		byText[req.Text] = rec.admin[i]
		if req.Chat.ID != "-100" || req.Chat.Private {
			t.Errorf("chat = %+v", req.Chat)
		}
	}
	for text, want := range map[string]bool{"/list extra": true, "/record 1": false, "/stop 1": true} {
		got, ok := byText[text]
		if !ok || got != want {
			t.Errorf("%q: handled %v, admin %v, want admin %v", text, ok, got, want)
		}
	}
	if len(rec.migrated) != 1 || rec.migrated[0] != [2]string{"-100", "-1009"} {
		t.Errorf("migrations = %v", rec.migrated)
	}
	replies := 0
	for _, c := range fake.Calls() {
		if c.Method == "sendMessage" && c.ReplyTo != 0 && strings.HasPrefix(c.Text, "ok: ") {
			replies++
		}
	}
	if replies != 3 {
		t.Errorf("%d replies, want 3", replies)
	}
	if !strings.Contains(fake.Commands(), `"command":"archive"`) {
		t.Errorf("command menu = %s", fake.Commands())
	}
}

func TestSendEditAndRateLimit(t *testing.T) {
	fake, b, _ := start(t)
	ctx := context.Background()
	chat := bot.Chat{Platform: "telegram", ID: "-100"}
	photoID, err := b.Send(ctx, chat, bot.Message{Text: "live", PhotoURL: "http://x/cover.jpg", LinkURL: "https://live.bilibili.com/1", LinkLabel: "Open"})
	if err != nil {
		t.Fatal(err)
	}
	textID, err := b.Send(ctx, chat, bot.Message{Text: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Edit(ctx, chat, photoID, bot.Message{Text: "ended"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Edit(ctx, chat, textID, bot.Message{Text: "edited"}); err != nil {
		t.Fatal(err)
	}
	calls := fake.Calls()
	want := []string{"sendPhoto", "sendMessage", "editMessageCaption", "editMessageText"}
	if len(calls) != 4 {
		t.Fatalf("calls = %+v", calls)
	}
	for i, c := range calls {
		if c.Method != want[i] {
			t.Errorf("call %d = %s, want %s", i, c.Method, want[i])
		}
	}
	if !strings.Contains(calls[0].Markup, "https://live.bilibili.com/1") || calls[0].Photo != "http://x/cover.jpg" {
		t.Errorf("photo alert = %+v", calls[0])
	}
	if calls[2].MessageID != calls[0].MessageID || calls[2].Text != "ended" {
		t.Errorf("caption edit = %+v", calls[2])
	}
	if err := b.Edit(ctx, chat, "garbage", bot.Message{}); !errors.Is(err, bot.ErrCannotEdit) {
		t.Errorf("edit of an unknown id = %v, want ErrCannotEdit", err)
	}
	fake.TooManyRequests("sendMessage", 1)
	_, err = b.Send(ctx, chat, bot.Message{Text: "x"})
	var ra *bot.RetryAfter
	if !errors.As(err, &ra) || ra.Wait != time.Second {
		t.Errorf("send during a 429 = %v, want RetryAfter 1s", err)
	}
}

// What Telegram answers when things go wrong decides whether the outbox
// retries, gives up, or sends a follow-up.
func TestSendAndEditErrors(t *testing.T) {
	fake, b, _ := start(t)
	ctx := context.Background()
	chat := bot.Chat{Platform: "telegram", ID: "-100"}

	// A cover Telegram cannot fetch: the alert goes out as text.
	fake.Fail("sendPhoto", 1, 400, "Bad Request: failed to get HTTP URL content")
	id, err := b.Send(ctx, chat, bot.Message{Text: "live", PhotoURL: "http://x/cover.jpg", LinkURL: "https://live.bilibili.com/1", LinkLabel: "Open"})
	if err != nil {
		t.Fatalf("alert with an unfetchable cover = %v, want it sent as text", err)
	}
	calls := fake.Calls()
	if len(calls) != 1 || calls[0].Method != "sendMessage" || calls[0].Text != "live" || !strings.Contains(calls[0].Markup, "live.bilibili.com/1") {
		t.Fatalf("calls = %+v, want one text alert with the link", calls)
	}
	// Its id edits as text: the end of the broadcast edits it in place.
	if err := b.Edit(ctx, chat, id, bot.Message{Text: "ended"}); err != nil {
		t.Fatal(err)
	}
	if c := fake.Calls()[1]; c.Method != "editMessageText" || c.MessageID != calls[0].MessageID {
		t.Errorf("edit = %+v, want editMessageText of the text alert", c)
	}

	// Removed from the group: rejected, not worth a retry.
	fake.Fail("sendMessage", 1, 403, "Forbidden: bot was kicked from the group chat")
	_, err = b.Send(ctx, chat, bot.Message{Text: "x"})
	var rejected *bot.Rejected
	if !errors.As(err, &rejected) {
		t.Errorf("send after being kicked = %v, want bot.Rejected", err)
	}
	// Telegram down: an ordinary error the outbox retries.
	fake.Fail("sendMessage", 1, 502, "Bad Gateway")
	if _, err = b.Send(ctx, chat, bot.Message{Text: "x"}); err == nil || errors.As(err, &rejected) {
		t.Errorf("send during an outage = %v, want a retryable error", err)
	}

	// An alert an admin deleted: a follow-up instead of the edit.
	fake.Fail("editMessageText", 1, 400, "Bad Request: message to edit not found")
	if err := b.Edit(ctx, chat, id, bot.Message{Text: "ended"}); !errors.Is(err, bot.ErrCannotEdit) {
		t.Errorf("edit of a deleted alert = %v, want ErrCannotEdit", err)
	}
	// The same text again (a retry whose first answer was lost): done.
	fake.Fail("editMessageText", 1, 400, "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message")
	if err := b.Edit(ctx, chat, id, bot.Message{Text: "ended"}); err != nil {
		t.Errorf("edit to the same text = %v, want success", err)
	}
}

func TestBadTokenSaysWhatToCheck(t *testing.T) {
	fake := telegramtest.Start(t, token)
	_, err := telegram.New(telegram.Options{Token: "wrong-token", Endpoint: fake.Endpoint()}, &recorder{}, &recorder{})
	if err == nil || !strings.Contains(err.Error(), "TELEGRAM_BOT_TOKEN") || strings.Contains(err.Error(), "wrong-token") {
		t.Errorf("New with a bad token = %v, want advice and no token in the message", err)
	}
}

// Commands handled before a stop are not handled again by the next start:
// the bot confirms what it handled when it stops, and Telegram, like the
// fake, then forgets those updates.
func TestRestartDoesNotAnswerOldCommandsAgain(t *testing.T) {
	fake := telegramtest.Start(t, token)
	// Polls take a while to be looked at, so the bot stops while the poll
	// that would confirm /list is still on its way: only the confirmation
	// at stop tells Telegram it was handled.
	fake.SlowPolls(500 * time.Millisecond)
	_, rec, stop := run(t, fake)
	fake.Command(-100, "supergroup", 5, "/list")
	wait(t, "the command", func() bool { return rec.count() == 1 })
	stop()
	fake.SlowPolls(0)

	_, rec, stop = run(t, fake)
	defer stop()
	fake.Command(-100, "supergroup", 5, "/status")
	wait(t, "the new command", func() bool { return rec.count() >= 1 })
	time.Sleep(200 * time.Millisecond)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.requests) != 1 || rec.requests[0].Text != "/status" {
		var texts []string
		for _, r := range rec.requests {
			texts = append(texts, r.Text)
		}
		t.Errorf("after a restart the bot handled %q, want only the new /status", texts)
	}
}

// Messages still go out after the poll has stopped: at shutdown roomrec
// finishes its files and flushes the outbox after the bots stop reading.
func TestSendAfterRunStops(t *testing.T) {
	fake := telegramtest.Start(t, token)
	b, _, stop := run(t, fake)
	wait(t, "the command menu", func() bool { return fake.Commands() != "" })
	stop()
	if _, err := b.Send(context.Background(), bot.Chat{Platform: "telegram", ID: "-100"}, bot.Message{Text: "file finished"}); err != nil {
		t.Errorf("Send after Run stopped = %v", err)
	}
}

// A Bot API call that hangs gives up after Options.SendTimeout, so one
// stuck connection holds neither a chat's queue nor shutdown for long.
func TestStuckSendTimesOut(t *testing.T) {
	fake, b, _ := startWith(t, telegram.Options{SendTimeout: 300 * time.Millisecond})
	fake.Hang("sendMessage", 1)
	start := time.Now()
	_, err := b.Send(context.Background(), bot.Chat{Platform: "telegram", ID: "-100"}, bot.Message{Text: "x"})
	if err == nil {
		t.Fatal("a hung send succeeded")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a hung send gave up after %s, want about the send timeout", took)
	}
	if _, err := b.Send(context.Background(), bot.Chat{Platform: "telegram", ID: "-100"}, bot.Message{Text: "y"}); err != nil {
		t.Errorf("the next send = %v", err)
	}
}
