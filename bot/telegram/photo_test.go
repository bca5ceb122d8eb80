package telegram_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"strings"
	"testing"
	"time"

	"roomrec/bot"
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

// A picture only roomrec has (a login QR code) is uploaded, with the text
// as its caption and the link as a button; it wins over a cover URL, and
// its message is edited as a caption, the picture staying.
func TestUploadedPhoto(t *testing.T) {
	fake, b, _ := start(t)
	ctx := context.Background()
	chat := bot.Chat{Platform: "telegram", ID: "5", Private: true}
	qr := qrLike(t)
	id, err := b.Send(ctx, chat, bot.Message{Text: "Scan with the Bilibili app", Photo: qr, PhotoName: "login.png", PhotoURL: "http://x/cover.jpg",
		LinkURL: "https://passport.bilibili.com/h5-app/passport/login/scan", LinkLabel: "Open", ReplyTo: "77"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Send(ctx, chat, bot.Message{Text: "unnamed", Photo: qr}); err != nil {
		t.Fatal(err)
	}
	if err := b.Edit(ctx, chat, id, bot.Message{Text: "Logged in"}); err != nil {
		t.Fatal(err)
	}
	calls := fake.Calls()
	if len(calls) != 3 {
		t.Fatalf("calls = %+v", calls)
	}
	up := calls[0]
	if up.Method != "sendPhoto" || up.ChatID != 5 || up.Text != "Scan with the Bilibili app" || up.ReplyTo != 77 {
		t.Errorf("upload = %+v, want sendPhoto to 5 with the caption, answering 77", up)
	}
	if up.Photo != "" {
		t.Errorf("the cover URL %q was sent too; the uploaded photo wins", up.Photo)
	}
	if !strings.Contains(up.Markup, "passport.bilibili.com") {
		t.Errorf("markup = %s, want the link button", up.Markup)
	}
	if up.PhotoName != "login.png" {
		t.Errorf("file name = %q, want login.png", up.PhotoName)
	}
	if !bytes.Equal(up.PhotoBytes, qr) {
		t.Errorf("uploaded %d bytes, want the %d of the PNG", len(up.PhotoBytes), len(qr))
	}
	img, err := png.Decode(bytes.NewReader(up.PhotoBytes))
	if err != nil {
		t.Fatalf("the upload is not a PNG: %v", err)
	}
	if got := img.Bounds(); got != image.Rect(0, 0, 29, 29) {
		t.Errorf("image bounds = %v, want 29×29", got)
	}
	if calls[1].PhotoName != "image.png" || !bytes.Equal(calls[1].PhotoBytes, qr) {
		t.Errorf("unnamed upload = %q with %d bytes, want image.png", calls[1].PhotoName, len(calls[1].PhotoBytes))
	}
	if e := calls[2]; e.Method != "editMessageCaption" || e.MessageID != up.MessageID || e.Text != "Logged in" {
		t.Errorf("edit = %+v, want editMessageCaption of message %d", e, up.MessageID)
	}
}

// What Telegram answers an upload decides, as for any send, whether the
// outbox retries. (The library reports upload errors without their status
// code.) A refused picture is not sent as text instead, as an unfetchable
// cover is: without the picture the message says nothing.
func TestUploadErrors(t *testing.T) {
	tests := []struct {
		name        string
		code        int
		description string
		rejected    bool
	}{
		{"bad image", 400, "Bad Request: IMAGE_PROCESS_FAILED", true},
		{"blocked by the user", 403, "Forbidden: bot was blocked by the user", true},
		{"Telegram down", 502, "Bad Gateway", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, b, _ := start(t)
			fake.Fail("sendPhoto", 1, tt.code, tt.description)
			_, err := b.Send(context.Background(), bot.UserChat("telegram", "5"), bot.Message{Text: "Scan", Photo: qrLike(t)})
			var rejected *bot.Rejected
			if err == nil || errors.As(err, &rejected) != tt.rejected {
				t.Errorf("Send = %v, want an error that is rejected: %v", err, tt.rejected)
			}
			if calls := fake.Calls(); len(calls) != 0 {
				t.Errorf("calls = %+v, want none", calls)
			}
		})
	}
	t.Run("too many requests", func(t *testing.T) {
		fake, b, _ := start(t)
		fake.TooManyRequests("sendPhoto", 1)
		_, err := b.Send(context.Background(), bot.UserChat("telegram", "5"), bot.Message{Text: "Scan", Photo: qrLike(t)})
		var ra *bot.RetryAfter
		if !errors.As(err, &ra) || ra.Wait != time.Second {
			t.Errorf("Send during a 429 = %v, want RetryAfter 1s", err)
		}
	})
}

// A user's private chat with the bot has the user's id, so a message to
// a user goes to that chat.
func TestSendToUser(t *testing.T) {
	fake, b, _ := start(t)
	if _, err := b.Send(context.Background(), bot.UserChat("telegram", "5"), bot.Message{Text: "login expires soon"}); err != nil {
		t.Fatal(err)
	}
	calls := fake.Calls()
	if len(calls) != 1 || calls[0].Method != "sendMessage" || calls[0].ChatID != 5 || calls[0].Text != "login expires soon" {
		t.Errorf("calls = %+v, want one sendMessage to chat 5", calls)
	}
}

// A request carries its sender's user id, in a group and in private, but
// not for a command sent on behalf of the group: Telegram's stand-in
// sender is no one.
func TestRequestUserID(t *testing.T) {
	fake, _, rec := start(t)
	fake.Command(5, "private", 5, "/login")
	fake.Command(-100, "supergroup", 6, "/list")
	fake.CommandAsChat(-100, "/status")
	wait(t, "three commands", func() bool { return rec.count() == 3 })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	got := map[string][2]string{}
	for _, req := range rec.requests {
		got[req.Text] = [2]string{req.UserID, req.User}
	}
	want := map[string][2]string{
		"/login":  {"5", "user5"},
		"/list":   {"6", "user6"},
		"/status": {"", "GroupAnonymousBot"},
	}
	for text, w := range want {
		if got[text] != w {
			t.Errorf("%s: UserID, User = %q, want %q", text, got[text], w)
		}
	}
}
