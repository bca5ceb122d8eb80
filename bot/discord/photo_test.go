package discord

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"sync"
	"testing"
	"time"

	"roomrec/bot"
	"roomrec/bot/discord/discordtest"
	"roomrec/storage"
)

// qrLike is a small black-and-white PNG, as a QR code is.
func qrLike(t *testing.T) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, 29, 29))
	for y := range 29 {
		for x := range 29 {
			if (x/3+y/3)%2 == 0 {
				img.SetGray(x, y, color.Gray{Y: 255})
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func newSender(t *testing.T) (*discordtest.Server, *Bot) {
	t.Helper()
	fake := discordtest.Start(t)
	b, err := New(Options{Token: "token", APIURL: fake.URL()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return fake, b
}

// embedImage returns the image URL of a message body's first embed.
func embedImage(t *testing.T, body map[string]any) string {
	t.Helper()
	embeds, _ := body["embeds"].([]any)
	if len(embeds) == 0 {
		t.Fatalf("body %v has no embed", body)
	}
	image, _ := embeds[0].(map[string]any)["image"].(map[string]any)
	url, _ := image["url"].(string)
	return url
}

// A picture only roomrec has (a login QR code) is attached to the message
// and shown in its embed by file name; it wins over a cover URL. An edit
// names it again without uploading it.
func TestUploadedPhoto(t *testing.T) {
	fake, b := newSender(t)
	ctx := context.Background()
	chat := bot.Chat{Platform: storage.Discord, ID: "900"}
	qr := qrLike(t)
	id, err := b.Send(ctx, chat, bot.Message{Text: "Scan\nwith the Bilibili app", Photo: qr, PhotoName: "login.png", PhotoURL: "http://x/cover.jpg"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Send(ctx, chat, bot.Message{Text: "unnamed", Photo: qr}); err != nil {
		t.Fatal(err)
	}
	if err := b.Edit(ctx, chat, id, bot.Message{Text: "Scanned", Photo: qr, PhotoName: "login.png"}); err != nil {
		t.Fatal(err)
	}
	calls := fake.Calls()
	if len(calls) != 3 {
		t.Fatalf("calls = %+v", calls)
	}

	up := calls[0]
	if up.Method != "POST" || up.Path != "/channels/900/messages" || len(up.Files) != 1 {
		t.Fatalf("upload = %s %s with %d files, want one file posted to channel 900", up.Method, up.Path, len(up.Files))
	}
	f := up.Files[0]
	if f.Field != "files[0]" || f.Name != "login.png" || f.ContentType != "image/png" {
		t.Errorf("file = %s %q %s, want files[0] login.png image/png", f.Field, f.Name, f.ContentType)
	}
	if !bytes.Equal(f.Data, qr) {
		t.Errorf("uploaded %d bytes, want the %d of the PNG", len(f.Data), len(qr))
	}
	img, err := png.Decode(bytes.NewReader(f.Data))
	if err != nil {
		t.Fatalf("the upload is not a PNG: %v", err)
	}
	if got := img.Bounds(); got != image.Rect(0, 0, 29, 29) {
		t.Errorf("image bounds = %v, want 29×29", got)
	}
	if got := embedImage(t, up.Body); got != "attachment://login.png" {
		t.Errorf("embed image = %q, want attachment://login.png", got)
	}
	e := up.Body["embeds"].([]any)[0].(map[string]any)
	if e["title"] != "Scan" || e["description"] != "with the Bilibili app" {
		t.Errorf("embed = %v, want the text as title and description", e)
	}

	if len(calls[1].Files) != 1 || calls[1].Files[0].Name != "image.png" || embedImage(t, calls[1].Body) != "attachment://image.png" {
		t.Errorf("unnamed upload = %+v, want image.png shown in the embed", calls[1])
	}

	edit := calls[2]
	if edit.Method != "PATCH" || edit.Path != "/channels/900/messages/"+id || len(edit.Files) != 0 {
		t.Errorf("edit = %s %s with %d files, want a PATCH of %s uploading nothing", edit.Method, edit.Path, len(edit.Files), id)
	}
	if got := embedImage(t, edit.Body); got != "attachment://login.png" {
		t.Errorf("edited embed image = %q, want attachment://login.png", got)
	}
}

// A message to a user opens their DM channel once and goes there, as do
// later messages and edits; another user gets a channel of their own.
func TestSendToUserOpensDMOnce(t *testing.T) {
	fake, b := newSender(t)
	ctx := context.Background()
	owner := bot.UserChat(storage.Discord, "7")
	id, err := b.Send(ctx, owner, bot.Message{Text: "Scan", Photo: qrLike(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Send(ctx, owner, bot.Message{Text: "login expires soon"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Edit(ctx, owner, id, bot.Message{Text: "Logged in"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Send(ctx, bot.UserChat(storage.Discord, "8"), bot.Message{Text: "hello"}); err != nil {
		t.Fatal(err)
	}

	dm, other := fake.DMChannel("7"), fake.DMChannel("8")
	if dm == "" || other == "" || dm == other {
		t.Fatalf("DM channels = %q and %q, want one for each user", dm, other)
	}
	var opened []string
	var paths []string
	for _, c := range fake.Calls() {
		if c.Path == "/users/@me/channels" {
			opened = append(opened, c.Body["recipient_id"].(string))
			continue
		}
		paths = append(paths, c.Method+" "+c.Path)
	}
	if len(opened) != 2 || opened[0] != "7" || opened[1] != "8" {
		t.Errorf("DMs opened with %v, want 7 then 8, once each", opened)
	}
	want := []string{"POST /channels/" + dm + "/messages", "POST /channels/" + dm + "/messages", "PATCH /channels/" + dm + "/messages/" + id, "POST /channels/" + other + "/messages"}
	if len(paths) != len(want) {
		t.Fatalf("calls = %v, want %v", paths, want)
	}
	for i := range want {
		if paths[i] != want[i] {
			t.Errorf("call %d = %s, want %s", i, paths[i], want[i])
		}
	}
}

// A DM that cannot be opened fails the message as any send does, and the
// next message tries again; a DM channel Discord no longer knows is
// opened again.
func TestSendToUserErrors(t *testing.T) {
	fake, b := newSender(t)
	ctx := context.Background()
	owner := bot.UserChat(storage.Discord, "7")
	opens := func() int {
		n := 0
		for _, c := range fake.Calls() {
			if c.Path == "/users/@me/channels" {
				n++
			}
		}
		return n
	}

	// Every try discordgo makes of its own.
	fake.Fail("POST", "/users/@me/channels", b.s.MaxRestRetries+1, 502, 0, "Bad Gateway")
	var rejected *bot.Rejected
	if _, err := b.Send(ctx, owner, bot.Message{Text: "x"}); err == nil || errors.As(err, &rejected) {
		t.Errorf("send while DMs cannot be opened = %v, want a retryable error", err)
	}
	fake.Fail("POST", "/users/@me/channels", 1, 400, 50007, "Cannot send messages to this user")
	if _, err := b.Send(ctx, owner, bot.Message{Text: "x"}); !errors.As(err, &rejected) {
		t.Errorf("send to a user who takes no DMs = %v, want bot.Rejected", err)
	}
	before := opens()
	if _, err := b.Send(ctx, owner, bot.Message{Text: "x"}); err != nil {
		t.Fatalf("send once Discord is back = %v", err)
	}
	if opens() != before+1 {
		t.Errorf("%d DM opens, want %d: a failed open is not cached", opens(), before+1)
	}

	fake.Fail("POST", "/channels/"+fake.DMChannel("7")+"/messages", 1, 404, 10003, "Unknown Channel")
	if _, err := b.Send(ctx, owner, bot.Message{Text: "x"}); !errors.As(err, &rejected) {
		t.Errorf("send to a vanished DM = %v, want bot.Rejected", err)
	}
	if _, err := b.Send(ctx, owner, bot.Message{Text: "x"}); err != nil {
		t.Fatal(err)
	}
	if opens() != before+2 {
		t.Errorf("%d DM opens, want %d: a vanished DM channel is opened again", opens(), before+2)
	}
}

// A request carries its sender's user id: the member's in a guild, the
// user's in a DM.
func TestRequestUserID(t *testing.T) {
	fake := discordtest.Start(t)
	var mu sync.Mutex
	got := map[string]bot.Request{}
	h := fakeHandler{handle: func(_ context.Context, req bot.Request) bot.Reply {
		mu.Lock()
		defer mu.Unlock()
		got[req.Chat.ID] = req
		return bot.Reply{Text: "ok"}
	}}
	b, err := New(Options{Token: "token", APIURL: fake.URL()}, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-fake.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("the bot never connected to the gateway")
	}
	fake.Dispatch(discordtest.Interaction{ID: "1", GuildID: "900", ChannelID: "901", UserID: "7", Name: "list"})
	fake.Dispatch(discordtest.Interaction{ID: "2", ChannelID: "950", UserID: "8", Name: "help"})
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 2 commands handled", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	tests := []struct {
		name, channel, userID, user string
		private                     bool
	}{
		{"guild", "901", "7", "user7", false},
		{"DM", "950", "8", "user8", true},
	}
	for _, tt := range tests {
		req := got[tt.channel]
		if req.UserID != tt.userID || req.User != tt.user || req.Chat.Private != tt.private {
			t.Errorf("%s: UserID %q, User %q, private %v; want %q, %q, %v", tt.name, req.UserID, req.User, req.Chat.Private, tt.userID, tt.user, tt.private)
		}
	}
}
