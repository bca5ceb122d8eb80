package discord

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"roomrec/bot"
	"roomrec/bot/discord/discordtest"
)

// fakeHandler is a Handler whose commands are a function of the test's.
type fakeHandler struct {
	handle func(ctx context.Context, req bot.Request) bot.Reply
}

func (h fakeHandler) Handle(ctx context.Context, req bot.Request) bot.Reply {
	return h.handle(ctx, req)
}

func (fakeHandler) SuggestRooms(context.Context, bot.Chat, string) ([]bot.Choice, error) {
	return nil, nil
}

func (fakeHandler) SuggestRecordings(context.Context, bot.Chat, string) ([]bot.Choice, error) {
	return nil, nil
}

var _ Handler = fakeHandler{}

// Run waits for the commands in flight when it stops, and no command
// starts once it has begun to stop: after Run returns, cmd/roomrec closes
// the database a command would use. discordgo runs each handler in a
// goroutine of its own, so one the gateway started just before Close can
// be scheduled after Run returned; the test plays that goroutine by
// calling the handler itself.
func TestNoCommandAfterRunStops(t *testing.T) {
	fake := discordtest.Start(t)
	var handled atomic.Int32
	entered, release := make(chan struct{}), make(chan struct{})
	h := fakeHandler{handle: func(ctx context.Context, req bot.Request) bot.Reply {
		if handled.Add(1) == 1 {
			close(entered)
			<-release
		}
		return bot.Reply{Text: "ok"}
	}}
	b, err := New(Options{Token: "token", APIURL: fake.URL()}, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	select {
	case <-fake.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("the bot never connected to the gateway")
	}

	fake.Dispatch(discordtest.Interaction{ID: "1", GuildID: "900", ChannelID: "901", UserID: "7", Name: "list"})
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the command never reached the handler")
	}
	cancel()
	// discordgo's Close takes a second; Run must still be waiting after it.
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) while a command was in flight", err)
	case <-time.After(1500 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return once the command finished")
	}

	late := &discordgo.InteractionCreate{Interaction: &discordgo.Interaction{
		ID: "2", Type: discordgo.InteractionApplicationCommand, GuildID: "900", ChannelID: "901",
		Member: &discordgo.Member{User: &discordgo.User{ID: "7", Username: "user7"}},
		Data:   discordgo.ApplicationCommandInteractionData{Name: "list"},
	}}
	b.onInteraction(b.s, late)
	if n := handled.Load(); n != 1 {
		t.Errorf("%d commands handled, want 1: a command was handled after Run returned", n)
	}
	for _, c := range fake.Calls() {
		if strings.Contains(c.Path, "/interactions/2/") {
			t.Errorf("answered the interaction that came after Run returned: %+v", c)
		}
	}
}
