// Package discord connects the bot core to Discord: slash commands in,
// embeds out. All command logic is in package bot; this package translates
// interactions into bot requests and bot messages into Discord calls.
package discord

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bwmarrin/discordgo"

	"roomrec"
	"roomrec/bot"
	"roomrec/storage"
)

// manageServer is the permission the mutating commands ask for by default,
// and that is checked again on every call.
const manageServer = discordgo.PermissionManageGuild

// Handler is what the adapter needs of the bot core; *bot.Router has it.
type Handler interface {
	Handle(ctx context.Context, req bot.Request) bot.Reply
	SuggestRooms(ctx context.Context, c bot.Chat, typed string) ([]bot.Choice, error)
	SuggestRecordings(ctx context.Context, c bot.Chat, typed string) ([]bot.Choice, error)
}

// Bot is a Discord bot session.
type Bot struct {
	s       *discordgo.Session
	handler Handler
	guildID string
	log     *slog.Logger

	mu       sync.Mutex
	ctx      context.Context // Run's; guarded by mu
	stopping bool            // Run has begun to stop: no command starts; guarded by mu
	// inflight counts the commands being served. It is only added to
	// under mu while not stopping, so once Run has set stopping its Wait
	// cannot race a new command.
	inflight  sync.WaitGroup
	connected atomic.Bool

	// dmMu is held while a DM channel is looked up or opened, so that
	// two messages to one user open it once.
	dmMu sync.Mutex
	dms  map[string]string // user id → the id of their DM channel with the bot; guarded by dmMu
}

// Options configure a Bot.
type Options struct {
	Token   string
	GuildID string // register commands in this guild only; empty: globally
	APIURL  string // base replacing https://discord.com for REST and gateway discovery
	Logger  *slog.Logger
}

// New returns a Bot; Run connects it.
func New(opts Options, handler Handler) (*Bot, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := discordgo.New("Bot " + opts.Token)
	if err != nil {
		return nil, fmt.Errorf("discord: %w", err)
	}
	if opts.APIURL != "" && strings.TrimRight(opts.APIURL, "/") != "https://discord.com" {
		base, err := url.Parse(opts.APIURL)
		if err != nil {
			return nil, fmt.Errorf("DISCORD_API_URL: %w", err)
		}
		s.Client = &http.Client{Transport: rehost{base: base, next: http.DefaultTransport}, Timeout: 20 * time.Second}
	}
	s.Identify.Intents = discordgo.IntentsGuilds
	s.LogLevel = discordgo.LogError
	b := &Bot{s: s, handler: handler, guildID: opts.GuildID, log: opts.Logger, ctx: context.Background(), dms: map[string]string{}}
	s.AddHandler(b.onInteraction)
	s.AddHandler(func(*discordgo.Session, *discordgo.Connect) { b.connected.Store(true) })
	s.AddHandler(func(*discordgo.Session, *discordgo.Disconnect) { b.connected.Store(false) })
	return b, nil
}

// rehost sends requests for discord.com to another base URL: how tests and
// proxies reach a Discord of their own.
type rehost struct {
	base *url.URL
	next http.RoundTripper
}

func (t rehost) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host == "discord.com" {
		req = req.Clone(req.Context())
		req.URL.Scheme, req.URL.Host = t.base.Scheme, t.base.Host
		req.Host = t.base.Host
	}
	return t.next.RoundTrip(req)
}

// Commands are bot.Commands as slash commands: a subcommand for each of a
// command's subcommands, an option for each argument. Commands only admins
// may run are shown to those with Manage Server by default, and checked
// again on every call.
func Commands() []*discordgo.ApplicationCommand {
	admin := int64(manageServer)
	dm := true
	var out []*discordgo.ApplicationCommand
	for _, c := range bot.Commands {
		ac := &discordgo.ApplicationCommand{Name: c.Name, Description: c.Brief, DMPermission: &dm, Options: options(c.Args)}
		if c.Who == bot.Admins {
			ac.DefaultMemberPermissions = &admin
		}
		for _, sub := range c.Subcommands {
			ac.Options = append(ac.Options, &discordgo.ApplicationCommandOption{Type: discordgo.ApplicationCommandOptionSubCommand,
				Name: sub.Name, Description: sub.Brief, Options: options(sub.Args)})
		}
		out = append(out, ac)
	}
	return out
}

// optionTypes are the Discord types of the kinds of argument.
var optionTypes = map[bot.ArgKind]discordgo.ApplicationCommandOptionType{
	bot.RoomArg:      discordgo.ApplicationCommandOptionString,
	bot.RecordingArg: discordgo.ApplicationCommandOptionInteger,
	bot.NumberArg:    discordgo.ApplicationCommandOptionInteger,
	bot.TextArg:      discordgo.ApplicationCommandOptionString,
	bot.SwitchArg:    discordgo.ApplicationCommandOptionBoolean,
}

// options are a command's arguments as slash command options.
func options(args []bot.Arg) []*discordgo.ApplicationCommandOption {
	var out []*discordgo.ApplicationCommandOption
	for _, a := range args {
		o := &discordgo.ApplicationCommandOption{Type: optionTypes[a.Kind], Name: a.Name, Description: a.Help,
			Required: a.Required, Autocomplete: a.Complete}
		if a.Min != 0 {
			o.MinValue = new(float64(a.Min))
		}
		o.MaxValue = float64(a.Max)
		out = append(out, o)
	}
	return out
}

// Run connects to the gateway, registers the commands (one idempotent bulk
// overwrite) and serves interactions until ctx ends.
func (b *Bot) Run(ctx context.Context) error {
	b.mu.Lock()
	b.ctx = ctx
	b.mu.Unlock()
	if err := b.s.Open(); err != nil {
		return fmt.Errorf("discord: connect: %w", err)
	}
	defer func() {
		// Commands first, then the gateway: an interaction that
		// discordgo reads while closing, or whose handler goroutine it
		// started before but that runs only now, is not served. The
		// caller closes what commands use (the database) once Run
		// returns.
		b.mu.Lock()
		b.stopping = true
		b.mu.Unlock()
		b.s.Close()
		b.inflight.Wait()
	}()
	appID := b.s.State.User.ID
	if _, err := b.s.ApplicationCommandBulkOverwrite(appID, b.guildID, Commands()); err != nil {
		return fmt.Errorf("discord: register commands: %w", err)
	}
	b.log.Info("discord bot connected", slog.String("user", b.s.State.User.Username))
	<-ctx.Done()
	return nil
}

// Connected reports whether the gateway session is up.
func (b *Bot) Connected() bool { return b.connected.Load() }

// begin counts a command as in flight and returns Run's context, or
// reports false once Run has begun to stop.
func (b *Bot) begin() (context.Context, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopping {
		return nil, false
	}
	b.inflight.Add(1)
	return b.ctx, true
}

func (b *Bot) onInteraction(s *discordgo.Session, ic *discordgo.InteractionCreate) {
	ctx, ok := b.begin()
	if !ok {
		// Discord shows the user that the interaction failed, which is
		// true: roomrec is shutting down.
		b.log.Debug("discord: interaction during shutdown not served", slog.String("id", ic.ID))
		return
	}
	defer b.inflight.Done()
	i := ic.Interaction
	switch i.Type {
	case discordgo.InteractionApplicationCommand:
		b.command(ctx, i)
	case discordgo.InteractionApplicationCommandAutocomplete:
		b.autocomplete(ctx, i)
	}
}

// chatOf is the channel an interaction came from: subscriptions and alerts
// are per channel. A DM is a private chat.
func chatOf(i *discordgo.Interaction) bot.Chat {
	return bot.Chat{Platform: storage.Discord, ID: i.ChannelID, Private: i.GuildID == ""}
}

// commandOf is the command an interaction names, a subcommand as
// "archive keep", and its options (the subcommand's), each valued as its
// bot.ArgKind says: JSON numbers arrive as float64 and become int64.
func commandOf(data discordgo.ApplicationCommandInteractionData) (string, map[string]any) {
	name, opts := named(data)
	values := map[string]any{}
	for _, o := range opts {
		switch o.Type {
		case discordgo.ApplicationCommandOptionInteger:
			values[o.Name] = o.IntValue()
		case discordgo.ApplicationCommandOptionBoolean:
			values[o.Name] = o.BoolValue()
		default:
			values[o.Name] = fmt.Sprint(o.Value)
		}
	}
	return name, values
}

// named is the command an interaction names, a subcommand as "archive
// keep", and the options given to it.
func named(data discordgo.ApplicationCommandInteractionData) (string, []*discordgo.ApplicationCommandInteractionDataOption) {
	if opts := data.Options; len(opts) == 1 && opts[0].Type == discordgo.ApplicationCommandOptionSubCommand {
		return data.Name + " " + opts[0].Name, opts[0].Options
	}
	return data.Name, data.Options
}

// command answers a slash command within Discord's three seconds: at once
// when the work is local, or deferred and then edited when it may wait on
// Bilibili. Refusals and errors are only shown to the caller.
func (b *Bot) command(ctx context.Context, i *discordgo.Interaction) {
	data := i.ApplicationCommandData()
	// In a guild the sender is the member; in a DM, the user.
	user, userID := "", ""
	if i.Member != nil && i.Member.User != nil {
		user, userID = i.Member.User.Username, i.Member.User.ID
	} else if i.User != nil {
		user, userID = i.User.Username, i.User.ID
	}
	// Server admins may change who can see a command; the permission is
	// checked again here, on every call.
	admin := i.Member != nil && i.Member.Permissions&manageServer != 0
	name, opts := commandOf(data)
	req := bot.Request{
		Chat:    chatOf(i),
		User:    user,
		UserID:  userID,
		Command: name,
		Options: opts,
		IsAdmin: func(context.Context) (bool, error) { return admin, nil },
	}
	// Only slow commands by someone allowed to use them wait on Bilibili;
	// everything else, refusals included, is answered at once.
	c := bot.Lookup(data.Name)
	slow := c != nil && c.Slow && (c.Who != bot.Admins || admin || req.Chat.Private)
	if !slow {
		reply := b.handler.Handle(ctx, req)
		b.respond(i, reply)
		return
	}
	err := b.s.InteractionRespond(i, &discordgo.InteractionResponse{Type: discordgo.InteractionResponseDeferredChannelMessageWithSource})
	if err != nil {
		b.log.Warn("discord: defer failed", roomrec.LogErr(err))
		return
	}
	reply := b.handler.Handle(ctx, req)
	if reply.Private {
		// A deferred answer is public; a refusal must not be. Replace it
		// with a message only the caller sees.
		b.s.InteractionResponseDelete(i)
		_, err = b.s.FollowupMessageCreate(i, true, &discordgo.WebhookParams{Content: reply.Text, Flags: discordgo.MessageFlagsEphemeral, AllowedMentions: noMentions()})
	} else {
		_, err = b.s.InteractionResponseEdit(i, &discordgo.WebhookEdit{Content: &reply.Text, AllowedMentions: noMentions()})
	}
	if err != nil {
		b.log.Warn("discord: reply failed", roomrec.LogErr(err))
	}
}

func (b *Bot) respond(i *discordgo.Interaction, reply bot.Reply) {
	data := &discordgo.InteractionResponseData{Content: reply.Text, AllowedMentions: noMentions()}
	if reply.Private {
		data.Flags = discordgo.MessageFlagsEphemeral
	}
	if err := b.s.InteractionRespond(i, &discordgo.InteractionResponse{Type: discordgo.InteractionResponseChannelMessageWithSource, Data: data}); err != nil {
		b.log.Warn("discord: reply failed", roomrec.LogErr(err))
	}
}

// autocomplete suggests this channel's rooms or recordings, for the
// argument being typed, as its bot.ArgKind says.
func (b *Bot) autocomplete(ctx context.Context, i *discordgo.Interaction) {
	name, opts := named(i.ApplicationCommandData())
	var kind bot.ArgKind
	var choices []bot.Choice
	var err error
	for _, o := range opts {
		c := bot.Lookup(name)
		if !o.Focused || c == nil {
			continue
		}
		arg, _ := c.Arg(o.Name)
		kind = arg.Kind
		switch typed := fmt.Sprint(o.Value); kind {
		case bot.RecordingArg:
			choices, err = b.handler.SuggestRecordings(ctx, chatOf(i), typed)
		case bot.RoomArg:
			choices, err = b.handler.SuggestRooms(ctx, chatOf(i), typed)
		}
	}
	if err != nil {
		b.log.Warn("discord: autocomplete failed", roomrec.LogErr(err))
	}
	out := []*discordgo.ApplicationCommandOptionChoice{}
	for _, c := range choices {
		var value any = c.Value
		if kind == bot.RecordingArg {
			// An integer option takes integer choices.
			var n int64
			fmt.Sscan(c.Value, &n)
			value = n
		}
		out = append(out, &discordgo.ApplicationCommandOptionChoice{Name: c.Name, Value: value})
	}
	b.s.InteractionRespond(i, &discordgo.InteractionResponse{Type: discordgo.InteractionApplicationCommandAutocompleteResult,
		Data: &discordgo.InteractionResponseData{Choices: out}})
}

// noMentions keeps a stream title such as "@everyone 开播" from pinging
// anyone.
func noMentions() *discordgo.MessageAllowedMentions {
	return &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}}
}

// embed is m as an embed. A picture uploaded with the message is shown in
// it by file name (attachment://), which Discord resolves against the
// message's attachments, on an edit too.
func embed(m bot.Message) *discordgo.MessageEmbed {
	title, desc, _ := strings.Cut(m.Text, "\n")
	e := &discordgo.MessageEmbed{Title: title, Description: desc, URL: m.LinkURL, Timestamp: time.Now().Format(time.RFC3339)}
	switch {
	case len(m.Photo) > 0:
		e.Image = &discordgo.MessageEmbedImage{URL: "attachment://" + m.PhotoFileName()}
	case m.PhotoURL != "":
		e.Image = &discordgo.MessageEmbedImage{URL: m.PhotoURL}
	}
	return e
}

// Send posts a bot message to a channel as an embed, with m.Photo attached
// and shown in the embed. A chat that is a user (bot.Chat.ToUser) is
// reached in their DM channel with the bot, opened on the first message.
func (b *Bot) Send(ctx context.Context, chat bot.Chat, m bot.Message) (string, error) {
	channel, err := b.channelOf(ctx, chat)
	if err != nil {
		return "", err
	}
	send := &discordgo.MessageSend{Embeds: []*discordgo.MessageEmbed{embed(m)}, AllowedMentions: noMentions()}
	if len(m.Photo) > 0 {
		send.Files = []*discordgo.File{{Name: m.PhotoFileName(), ContentType: "image/png", Reader: bytes.NewReader(m.Photo)}}
	}
	msg, err := b.s.ChannelMessageSendComplex(channel, send, discordgo.WithContext(ctx))
	if err != nil {
		b.forgetDM(chat, err)
		return "", apiError(err)
	}
	return msg.ID, nil
}

// Edit replaces a message's embed, as when a broadcast ends. A picture
// uploaded with the message stays attached: m.Photo is not uploaded
// again, only named, to keep the picture inside the embed.
func (b *Bot) Edit(ctx context.Context, chat bot.Chat, messageID string, m bot.Message) error {
	channel, err := b.channelOf(ctx, chat)
	if err != nil {
		return err
	}
	embeds := []*discordgo.MessageEmbed{embed(m)}
	_, err = b.s.ChannelMessageEditComplex(&discordgo.MessageEdit{ID: messageID, Channel: channel, Embeds: &embeds, AllowedMentions: noMentions()}, discordgo.WithContext(ctx))
	var rest *discordgo.RESTError
	if errors.As(err, &rest) && rest.Message != nil && rest.Message.Code == discordgo.ErrCodeUnknownMessage {
		return bot.ErrCannotEdit // deleted: a follow-up instead
	}
	b.forgetDM(chat, err)
	return apiError(err)
}

// channelOf is the channel a chat's messages go to: the chat itself, or
// for a user the DM channel Discord gives the bot with them (the same one
// each time it is asked, so it is asked once).
func (b *Bot) channelOf(ctx context.Context, chat bot.Chat) (string, error) {
	if !chat.ToUser {
		return chat.ID, nil
	}
	b.dmMu.Lock()
	defer b.dmMu.Unlock()
	if id, ok := b.dms[chat.ID]; ok {
		return id, nil
	}
	ch, err := b.s.UserChannelCreate(chat.ID, discordgo.WithContext(ctx))
	if err != nil {
		return "", fmt.Errorf("discord: open a DM with user %s: %w", chat.ID, apiError(err))
	}
	b.dms[chat.ID] = ch.ID
	return ch.ID, nil
}

// forgetDM drops a user's DM channel that Discord no longer knows, so the
// next message opens it again.
func (b *Bot) forgetDM(chat bot.Chat, err error) {
	var rest *discordgo.RESTError
	if !chat.ToUser || !errors.As(err, &rest) || rest.Message == nil || rest.Message.Code != discordgo.ErrCodeUnknownChannel {
		return
	}
	b.dmMu.Lock()
	defer b.dmMu.Unlock()
	delete(b.dms, chat.ID)
}

// apiError turns a 429 that discordgo gave up on into bot.RetryAfter, and
// the answers Discord would give again on every try (400 invalid, 403 no
// access to the channel, 404 channel gone) into bot.Rejected. Anything
// else, such as a network error or a 5xx, is worth retrying.
func apiError(err error) error {
	var rl *discordgo.RateLimitError
	var rest *discordgo.RESTError
	switch {
	case errors.As(err, &rl):
		return &bot.RetryAfter{Wait: rl.RetryAfter}
	case errors.As(err, &rest) && rest.Response != nil:
		switch rest.Response.StatusCode {
		case http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound:
			return &bot.Rejected{Err: err}
		}
	}
	return err
}

var _ bot.Sender = (*Bot)(nil)
