package bot_test

import (
	"testing"
	"time"

	"golang.org/x/time/rate"

	"roomrec/bot"
	"roomrec/storage"
)

// A message to a user waits behind no chat's messages: the user has a
// queue of their own, and the platform is told the chat is a user.
func TestOutboxQueuesAUserApart(t *testing.T) {
	sender := &fakeSender{}
	outbox := bot.NewOutbox(nil)
	t.Cleanup(outbox.Close)
	// One message an hour per chat: a chat's second message waits.
	outbox.AddSender(storage.Discord, sender, bot.Limits{PerChat: rate.Every(time.Hour), PerChatBurst: 1, Global: rate.Inf})
	group := bot.Chat{Platform: storage.Discord, ID: "900"}
	owner := bot.UserChat(storage.Discord, "7")
	if !owner.Private || !owner.ToUser || owner.ID != "7" {
		t.Fatalf("UserChat = %+v, want a private chat to user 7", owner)
	}
	outbox.Send(group, bot.Message{Text: "live"}, nil)
	outbox.Send(group, bot.Message{Text: "waits an hour"}, nil)
	done := make(chan error, 1)
	outbox.Send(owner, bot.Message{Text: "login expires soon"}, func(_ string, err error) { done <- err })
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the message to the user waited behind the group's")
	}
	var toUser []sent
	for _, m := range sender.all() {
		if m.chat == "7" {
			toUser = append(toUser, m)
		}
	}
	if len(toUser) != 1 || !toUser[0].toUser || toUser[0].msg.Text != "login expires soon" {
		t.Errorf("sent to 7: %+v, want the notice, with the chat marked as a user", toUser)
	}
}

// A photo's file name is the one Discord keeps, so a message can show
// the picture by name.
func TestPhotoFileName(t *testing.T) {
	tests := []struct{ name, photoName, want string }{
		{"default", "", "image.png"},
		{"plain", "login-qr_1.png", "login-qr_1.png"},
		{"spaces and CJK", "登录 二维码.png", "______.png"},
		{"path", "../x.png", ".._x.png"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (bot.Message{PhotoName: tt.photoName}).PhotoFileName(); got != tt.want {
				t.Errorf("PhotoFileName(%q) = %q, want %q", tt.photoName, got, tt.want)
			}
		})
	}
}
