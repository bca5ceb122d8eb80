package discord

import (
	"context"
	"errors"
	"testing"

	"roomrec/bot"
	"roomrec/bot/discord/discordtest"
	"roomrec/storage"
)

// What Discord answers when things go wrong decides whether the outbox
// retries, gives up, or sends a follow-up.
func TestSendAndEditErrors(t *testing.T) {
	fake := discordtest.Start(t)
	b, err := New(Options{Token: "token", APIURL: fake.URL()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	chat := bot.Chat{Platform: storage.Discord, ID: "900"}
	id, err := b.Send(ctx, chat, bot.Message{Text: "live", LinkURL: "https://live.bilibili.com/1"})
	if err != nil || id == "" {
		t.Fatalf("Send = %q, %v", id, err)
	}

	// The bot lost access to the channel: rejected, not worth a retry.
	fake.Fail("POST", "/channels/900/messages", 1, 403, 50001, "Missing Access")
	_, err = b.Send(ctx, chat, bot.Message{Text: "x"})
	var rejected *bot.Rejected
	if !errors.As(err, &rejected) {
		t.Errorf("send without access = %v, want bot.Rejected", err)
	}
	// Discord down past discordgo's own retries: retryable.
	fake.Fail("POST", "/channels/900/messages", 10, 502, 0, "Bad Gateway")
	if _, err = b.Send(ctx, chat, bot.Message{Text: "x"}); err == nil || errors.As(err, &rejected) {
		t.Errorf("send during an outage = %v, want a retryable error", err)
	}

	// The alert was deleted: a follow-up instead of the edit.
	fake.Fail("PATCH", "/channels/900/messages/"+id, 1, 404, 10008, "Unknown Message")
	if err := b.Edit(ctx, chat, id, bot.Message{Text: "ended"}); !errors.Is(err, bot.ErrCannotEdit) {
		t.Errorf("edit of a deleted alert = %v, want ErrCannotEdit", err)
	}
	if err := b.Edit(ctx, chat, id, bot.Message{Text: "ended"}); err != nil {
		t.Errorf("edit = %v", err)
	}
}
