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
	"syscall"
	"time"

	"roomrec/bot"
	"roomrec/bot/discord"
	"roomrec/bot/telegram"
	"roomrec/download"
	"roomrec/recording"
	"roomrec/storage"
)

// serve is `roomrec serve`: the chat bots, every subscription resumed, until
// ctx ends. Shutdown runs in order: the bots stop taking commands, open
// files are finished (and indexed), queued messages get a moment to go out,
// and the database is closed.
func (m *Main) serve(ctx context.Context) error {
	cfg, logger, err := m.config()
	if err != nil {
		return err
	}
	if cfg.TelegramToken == "" && cfg.DiscordToken == "" {
		return errors.New("no bot token is set: put TELEGRAM_BOT_TOKEN and/or DISCORD_BOT_TOKEN in the environment or in .env (see .env.example); to record without a bot, use roomrec record ROOM")
	}

	// The recorder needs the notifier, which needs the store and outbox.
	store, err := storage.Open(ctx, filepath.Join(cfg.DataDir, "roomrec.db"), storage.Options{
		RecordingsDir: cfg.RecordingsDir(), Logger: logger.With(slog.String("component", "storage")),
	})
	if err != nil {
		return err
	}
	defer store.Close()
	if _, err := store.Reconcile(ctx); err != nil {
		return fmt.Errorf("check recordings after the last run: %w", err)
	}
	outbox := bot.NewOutbox(logger.With(slog.String("component", "outbox")))
	defer outbox.Close()
	notifier := bot.NewNotifier(store, outbox, logger.With(slog.String("component", "notifier")))
	api, mgr, err := m.newRecorder(cfg, logger, notifier.Handle)
	if err != nil {
		return err
	}
	stopRecorder := func() {
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		if err := mgr.Shutdown(sctx); err != nil {
			logger.Warn("some files were not finished in time", slog.Any("err", err))
		}
	}
	router := bot.NewRouter(store, mgr, api, logger.With(slog.String("component", "bot")))
	router.DiskFree = func() (uint64, error) { return diskFree(cfg.RecordingsDir()) }
	var httpServer *http.Server
	if cfg.HTTPAddr != "off" {
		key, err := download.LoadKey(filepath.Join(cfg.DataDir, "download.key"))
		if err != nil {
			stopRecorder()
			return err
		}
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			stopRecorder()
			return fmt.Errorf("ROOMREC_HTTP_ADDR=%s: %w", cfg.HTTPAddr, err)
		}
		public := cfg.PublicURL
		if public == "" {
			// Links that work on this machine, until a public URL is set.
			public = "http://" + ln.Addr().String()
		}
		links := download.New(store, download.Options{Key: key, PublicURL: public, RecordingsDir: cfg.RecordingsDir(), Logger: logger})
		router.Links = links
		httpServer = startHTTP(ln, links, store, logger)
	}

	var bots []interface{ Run(context.Context) error }
	if cfg.TelegramToken != "" {
		tg, err := telegram.New(cfg.TelegramToken, cfg.TelegramEndpoint, nil, router, store, logger.With(slog.String("component", "telegram")))
		if err != nil {
			stopRecorder()
			return err
		}
		outbox.AddSender(storage.Telegram, tg, bot.TelegramLimits)
		logger.Info("telegram bot connected", slog.String("bot", "@"+tg.Username()))
		bots = append(bots, tg)
	}
	if cfg.DiscordToken != "" {
		dc, err := discord.New(discord.Options{Token: cfg.DiscordToken, GuildID: cfg.DiscordGuildID, APIURL: cfg.DiscordAPIURL,
			Logger: logger.With(slog.String("component", "discord"))}, router)
		if err != nil {
			stopRecorder()
			return err
		}
		outbox.AddSender(storage.Discord, dc, bot.DiscordLimits)
		bots = append(bots, dc)
	}

	if err := resume(ctx, store, mgr, logger); err != nil {
		stopRecorder()
		return err
	}

	var running sync.WaitGroup
	for _, b := range bots {
		running.Go(func() {
			if err := b.Run(ctx); err != nil {
				logger.Error("bot stopped", slog.Any("err", err))
			}
		})
	}
	<-ctx.Done()
	logger.Info("stopping: no more commands; finishing open files")
	running.Wait()
	if httpServer != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		httpServer.Shutdown(sctx)
		cancel()
	}
	stopRecorder()
	fctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	outbox.Flush(fctx)
	return nil
}

// resume starts a task reference for every subscription in the database,
// so rooms are watched again after a restart exactly as chats left them.
func resume(ctx context.Context, store *storage.Store, mgr *recording.Manager, logger *slog.Logger) error {
	rooms, err := store.SubscribedRooms(ctx)
	if err != nil {
		return err
	}
	for _, r := range rooms {
		subs, err := store.RoomSubscribers(ctx, r.RoomID)
		if err != nil {
			return err
		}
		for _, sub := range subs {
			if _, err := mgr.Acquire(ctx, r.RoomID, sub.Mode == storage.Record); err != nil {
				// One room Bilibili refuses must not keep the others down.
				logger.Warn("could not resume room", slog.Int64("room", r.RoomID), slog.Any("err", err))
				break
			}
		}
	}
	logger.Info("resumed subscriptions", slog.Int("rooms", len(rooms)))
	return nil
}

// startHTTP serves archive downloads and a health check on ln.
func startHTTP(ln net.Listener, links http.Handler, store *storage.Store, logger *slog.Logger) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /dl/", links)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := store.Ping(r.Context()); err != nil {
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	logger.Info("http server listening", slog.String("addr", ln.Addr().String()))
	return srv
}

// diskFree returns the bytes available to roomrec where dir is.
func diskFree(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}
