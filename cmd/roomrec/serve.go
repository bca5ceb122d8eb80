package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"roomrec"
	"roomrec/account"
	"roomrec/bot"
	"roomrec/bot/discord"
	"roomrec/bot/telegram"
	"roomrec/download"
	"roomrec/recording"
	"roomrec/storage"
	"roomrec/webhook"
)

// serve is `roomrec serve`: the chat bots, every subscription resumed, the
// HTTP server, until Close.
func (m *Main) serve(ctx context.Context) error {
	cfg, logger, err := m.config()
	if err != nil {
		return err
	}
	if cfg.TelegramToken == "" && cfg.DiscordToken == "" {
		return errors.New("no bot token is set: put TELEGRAM_BOT_TOKEN and/or DISCORD_BOT_TOKEN in the environment or in .env (see .env.example); to try roomrec without a bot, use roomrec console")
	}
	c, err := m.startCore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	bots, err := m.connectBots(c, cfg, logger)
	if err == nil {
		c.startChats()
		err = c.resume(ctx)
	}
	if err != nil {
		c.close(context.Background())
		return err
	}
	rctx := m.running(ctx, logger, c, nil, "stopping: no more commands; finishing open files")
	for _, b := range bots {
		m.bots.Go(func() {
			if err := b.Run(rctx); err != nil {
				logger.Error("bot stopped", roomrec.LogErr(err))
			}
		})
	}
	return nil
}

// connectBots connects the configured bots and gives the outbox their
// senders. They take commands once run.
func (m *Main) connectBots(c *core, cfg Config, logger *slog.Logger) ([]interface{ Run(context.Context) error }, error) {
	var bots []interface{ Run(context.Context) error }
	if cfg.TelegramToken != "" {
		tg, err := telegram.New(telegram.Options{Token: cfg.TelegramToken, Endpoint: cfg.TelegramEndpoint, Replies: c.outbox,
			Logger: logger.With(roomrec.LogComponent("telegram"))}, c.router, c.router)
		if err != nil {
			return nil, err
		}
		c.outbox.AddSender(storage.Telegram, tg, bot.TelegramLimits)
		c.addBot(storage.Telegram, tg.Connected)
		logger.Info("telegram bot connected", slog.String("bot", "@"+tg.Username()))
		bots = append(bots, tg)
	}
	if cfg.DiscordToken != "" {
		dc, err := discord.New(discord.Options{Token: cfg.DiscordToken, GuildID: cfg.DiscordGuildID, APIURL: cfg.DiscordAPIURL,
			Logger: logger.With(roomrec.LogComponent("discord"))}, c.router)
		if err != nil {
			return nil, err
		}
		c.outbox.AddSender(storage.Discord, dc, bot.DiscordLimits)
		c.addBot(storage.Discord, dc.Connected)
		bots = append(bots, dc)
	}
	return bots, nil
}

// core is everything a chat-driven roomrec runs, whatever the chats: the
// store, the recorder, the notifier and outbox, the router and the HTTP
// server.
type core struct {
	store     *storage.Store
	webhooks  *webhook.Deliverer
	outbox    *bot.Outbox
	notifier  *bot.Notifier
	account   *account.Keeper
	mgr       *recording.Manager
	router    *bot.Router
	http      *http.Server
	httpAddr  string // where http listens
	log       *slog.Logger
	retention storage.Retention // applied by startChats
	stopPrune context.CancelFunc
	pruning   sync.WaitGroup

	console bool // roomrec console: its user is an owner

	botsMu sync.Mutex
	bots   map[storage.Platform]func() bool // platform → connected, for /healthz
}

// ownerChats are where the owners hear of the login: each owner's private
// chat with the bot, and the console's when it runs.
func (c *core) ownerChats(owners []bot.Owner) []bot.Chat {
	var chats []bot.Chat
	for _, o := range owners {
		chats = append(chats, bot.UserChat(o.Platform, o.UserID))
	}
	if c.console {
		chats = append(chats, consoleChat)
	}
	return chats
}

// addBot registers a platform's connection state for /healthz.
func (c *core) addBot(platform storage.Platform, connected func() bool) {
	c.botsMu.Lock()
	defer c.botsMu.Unlock()
	if c.bots == nil {
		c.bots = map[storage.Platform]func() bool{}
	}
	c.bots[platform] = connected
}

// botStates returns whether each bot is connected.
func (c *core) botStates() map[storage.Platform]bool {
	c.botsMu.Lock()
	defer c.botsMu.Unlock()
	out := map[storage.Platform]bool{}
	for p, f := range c.bots {
		out[p] = f()
	}
	return out
}

// pruneEvery is how often retention runs.
const pruneEvery = time.Hour

// startCore opens the database (finishing what a crash left), starts the
// recorder and the HTTP server, and builds the router.
func (m *Main) startCore(ctx context.Context, cfg Config, logger *slog.Logger) (*core, error) {
	// Webhook events say whether the room's danmaku websocket is up,
	// which the recorder made below knows.
	var recorder atomic.Pointer[recording.Manager]
	store, err := storage.Open(ctx, filepath.Join(cfg.DataDir, "roomrec.db"), storage.Options{
		RecordingsDir: cfg.RecordingsDir(), Logger: logger.With(roomrec.LogComponent("storage")),
		DanmakuConnected: func(roomID int64) bool {
			mgr := recorder.Load()
			return mgr != nil && mgr.DanmakuConnected(roomID)
		},
	})
	if err != nil {
		return nil, err
	}
	// Webhook delivery starts before the crash check, which queues the
	// FileClosed of each file it finishes; it resends what the last run
	// left unconfirmed.
	hooks := webhook.Options{URLs: cfg.WebhookURLs, Secret: cfg.WebhookSecret, Logger: logger.With(roomrec.LogComponent("webhook"))}
	if m.Webhooks != nil {
		m.Webhooks(&hooks)
	}
	deliverer := webhook.New(store, hooks)
	if err := deliverer.Start(ctx); err != nil {
		store.Close()
		return nil, err
	}
	if _, err := store.Reconcile(ctx, repairFiles(cfg.RecordingsDir(), logger.With(roomrec.LogComponent("recover")))); err != nil {
		deliverer.Close()
		store.Close()
		return nil, fmt.Errorf("check recordings after the last run: %w", err)
	}
	c := &core{store: store, webhooks: deliverer, log: logger, outbox: bot.NewOutbox(logger.With(roomrec.LogComponent("outbox")))}
	// The recorder reports to the notifier, which needs the store and
	// the outbox.
	notifier := bot.NewNotifier(store, c.outbox, logger.With(roomrec.LogComponent("notifier")))
	notifier.Location = cfg.Timezone
	c.notifier = notifier
	// The recorder asks the chats' rules which broadcasts to record.
	gate := bot.NewGate(store, cfg.Timezone, logger.With(roomrec.LogComponent("rules")))
	// The client tells the account when Bilibili ends the login; the
	// account needs the client, so the hook is set once both exist.
	var keeper atomic.Pointer[account.Keeper]
	api, mgr, err := m.newRecorder(cfg, logger, recorderHooks{
		onEvent: notifier.Handle,
		onLoggedOut: func() {
			if k := keeper.Load(); k != nil {
				k.LoggedOut()
			}
		},
		gate: gate.Admit,
		// Kept, so that the next start checks the room in bulk.
		onAnchor: func(r recording.Room) {
			if err := store.UpdateRoom(context.Background(), storage.Room{RoomID: r.RoomID, UID: r.UID}); err != nil {
				logger.Warn("anchor uid not saved", roomrec.LogRoom(r.RoomID), roomrec.LogErr(err))
			}
		},
	})
	if err != nil {
		c.close(context.Background())
		return nil, err
	}
	c.mgr = mgr
	recorder.Store(mgr)
	aopts := account.Options{
		Logger: logger.With(roomrec.LogComponent("account")),
		Secret: m.secrets.Add,
		OnExpired: func(uname string) {
			for _, chat := range c.ownerChats(cfg.Owners) {
				c.outbox.Send(chat, bot.LoginExpiredMessage(uname), nil)
			}
		},
	}
	if m.Account != nil {
		m.Account(&aopts)
	}
	c.account = account.New(api, store, aopts)
	keeper.Store(c.account)
	// Before any task asks for a stream: the stored login is what they
	// should be served with.
	if err := c.account.Start(ctx); err != nil {
		c.close(context.Background())
		return nil, err
	}
	notifier.Account = c.account
	// Retention runs even with no server policy: chats may set their own
	// with /archive keep.
	retention := storage.Retention{MaxAge: time.Duration(cfg.RetentionDays) * 24 * time.Hour, MaxBytes: int64(cfg.RetentionGiB) << 30}
	c.retention = retention
	ropts := bot.RouterOptions{
		Logger:    logger.With(roomrec.LogComponent("bot")),
		Retention: retention,
		Location:  cfg.Timezone,
		Account:   c.account, Owners: cfg.Owners, Messages: c.outbox,
		DiskFree: func() (uint64, error) { return recording.FreeSpace(cfg.RecordingsDir()) },
	}
	if cfg.HTTPAddr == "off" {
		c.router = bot.NewRouter(store, mgr, api, ropts)
		return c, nil
	}
	key, err := download.LoadKey(filepath.Join(cfg.DataDir, "download.key"))
	if err != nil {
		c.close(context.Background())
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		c.close(context.Background())
		return nil, fmt.Errorf("ROOMREC_HTTP_ADDR=%s: %w", cfg.HTTPAddr, err)
	}
	c.httpAddr = ln.Addr().String()
	public, local := cfg.PublicURL, cfg.PublicURL == ""
	if m.PublicURL != nil {
		public, local = m.PublicURL(c.httpAddr), false
	}
	if public == "" {
		// Links that work on this machine, until a public URL is set.
		public = "http://" + c.httpAddr
	}
	links := download.New(store, download.Options{Key: key, PublicURL: public, RecordingsDir: cfg.RecordingsDir(), Logger: logger})
	ropts.Links, ropts.LinksLocal = links, local
	c.router = bot.NewRouter(store, mgr, api, ropts)
	mux := http.NewServeMux()
	mux.Handle("GET /dl/", links)
	mux.Handle("GET /healthz", healthHandler(c))
	mux.Handle("GET /metrics", metricsHandler(c, cfg.RecordingsDir()))
	c.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go c.http.Serve(ln)
	logger.Info("http server listening", slog.String("addr", c.httpAddr))
	return c, nil
}

// close stops everything in order: no more downloads served, open files
// finished and indexed (given shutdownGrace, less if ctx ends sooner),
// queued messages and webhooks given a moment, the database closed. Each
// step stops what it owns before the next, so nothing touches the
// database after it closes: the recorder delivers no event after its
// Shutdown returns (in time or not), the notifier's timers are stopped,
// and the webhook workers have returned.
func (c *core) close(ctx context.Context) {
	if c.stopPrune != nil {
		c.stopPrune()
		c.pruning.Wait()
	}
	if c.http != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := c.http.Shutdown(sctx); err != nil {
			// A download still streaming: cut its connection. Close does
			// not wait for the handler, but a download reads the
			// database only before it starts sending the file.
			c.http.Close()
		}
		cancel()
	}
	if c.mgr != nil {
		sctx, cancel := context.WithTimeout(ctx, shutdownGrace)
		if err := c.mgr.Shutdown(sctx); err != nil {
			c.log.Warn("some files were not finished in time; the next start finishes them", roomrec.LogErr(err))
		}
		cancel()
	}
	if c.notifier != nil {
		c.notifier.Close()
	}
	if c.account != nil {
		c.account.Close()
	}
	fctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	var flushing sync.WaitGroup
	if c.webhooks != nil {
		// What the last files queued goes out now if the receivers
		// answer; what they do not confirm goes after the next start.
		flushing.Go(func() { c.webhooks.Flush(fctx) })
	}
	c.outbox.Flush(fctx)
	flushing.Wait()
	cancel()
	c.outbox.Close()
	if c.webhooks != nil {
		c.webhooks.Close()
	}
	c.store.Close()
}

// startChats begins the work whose outcome chats are told of: the login's
// refresh checks and retention. It is called once every sender is in
// place, so that the owners hear what a check finds, and each chat what
// retention took, from the first run on.
func (c *core) startChats() {
	c.account.StartChecks()
	pctx, stopPrune := context.WithCancel(context.Background())
	c.stopPrune = stopPrune
	c.pruning.Go(func() { c.prune(pctx, c.retention, c.notifier) })
}

// prune applies retention now and every pruneEvery, telling each chat what
// left its archive.
func (c *core) prune(ctx context.Context, r storage.Retention, n *bot.Notifier) {
	for {
		pruned, err := c.store.ApplyRetention(ctx, r)
		if err != nil && ctx.Err() == nil {
			c.log.Error("retention failed", roomrec.LogErr(err))
		}
		for _, p := range pruned {
			c.log.Info("retention pruned an archive", roomrec.LogChat(p.Chat.Platform, p.Chat.PlatformID),
				slog.Int("recordings", len(p.Recordings)), slog.Int64("freed", p.Freed))
			n.Pruned(p)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pruneEvery):
		}
	}
}

// resume watches every subscribed room again, as the chats left them.
func (c *core) resume(ctx context.Context) error {
	rooms, err := c.router.Resume(ctx)
	if err != nil {
		return err
	}
	c.log.Info("resumed subscriptions", slog.Int("rooms", rooms))
	return nil
}
