package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"roomrec"
	"roomrec/account"
	"roomrec/bilibili"
	"roomrec/recording"
	"roomrec/redact"
	"roomrec/webhook"
)

// shutdownGrace is how long files get to finish after the first signal.
const shutdownGrace = 10 * time.Second

// Main is the whole program, built from configuration, so a test can run
// roomrec in-process with a temp dir and loopback servers.
type Main struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Lookup reads the environment; DotenvPath names the .env file.
	Lookup     func(string) (string, bool)
	DotenvPath string
	// Options, when set, adjust the recorder's options after they are built
	// from the configuration (tests shorten intervals with it).
	Options func(*recording.Options)
	// Bilibili and Account, when set, adjust the Bilibili client's and the
	// login keeper's options the same way (tests give the client the
	// simulator's refresh key, and shorten the keeper's intervals).
	Bilibili func(*bilibili.Options)
	Account  func(*account.Options)
	// Webhooks, when set, adjusts webhook delivery's options (tests
	// shorten the backoff and the timeout with it).
	Webhooks func(*webhook.Options)
	// PublicURL, when set, makes the base URL of download links from the
	// address the HTTP server is bound to, in place of ROOMREC_PUBLIC_URL:
	// a test that listens on port 0 knows its address only then.
	PublicURL func(httpAddr string) string

	// secrets are hidden from the log: configured ones at start, a login's
	// cookies as it brings them.
	secrets *redact.Secrets

	// What Run started, for Close.
	log      *slog.Logger
	core     *core              // serve and console
	mgr      *recording.Manager // record
	stopping string             // logged as Close begins
	cancel   context.CancelFunc // ends the bots' runs and the console's reading
	bots     sync.WaitGroup     // the bots' runs and the console's reading
	started  bool               // Run left something running

	doneOnce   sync.Once
	done       chan struct{} // see Done; made by doneOnce
	finishOnce sync.Once     // closes done
	closeOnce  sync.Once
	closeErr   error
}

// NewMain returns a Main reading the real environment and ./.env.
func NewMain(stdin io.Reader, stdout, stderr io.Writer) *Main {
	return &Main{Stdin: stdin, Stdout: stdout, Stderr: stderr, Lookup: os.LookupEnv, DotenvPath: ".env"}
}

const usage = `usage:
  roomrec [serve]          run the chat bots configured in the environment
  roomrec serve --check    check the configuration and exit
  roomrec record ROOM...   record rooms (numbers or live.bilibili.com links) until interrupted
  roomrec console          chat commands on standard input`

// Run starts the subcommand in args and returns once it is running, or
// with an error if it could not start; Close stops it. A subcommand that
// runs to its end (help, serve --check) is over when Run returns, and Done
// is closed. ctx bounds the start only, such as `roomrec record` waiting
// out Bilibili's risk control: a record interrupted so returns nil, with
// nothing left running.
func (m *Main) Run(ctx context.Context, args []string) error {
	err := m.start(ctx, args)
	if err != nil || !m.started {
		m.finish()
	}
	return err
}

func (m *Main) start(ctx context.Context, args []string) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "record":
		return m.record(ctx, args)
	case "help", "-h", "--help":
		fmt.Fprintln(m.Stdout, usage)
		return nil
	case "serve":
		if len(args) == 1 && (args[0] == "--check" || args[0] == "-check") {
			return m.check()
		}
		if len(args) > 0 {
			return fmt.Errorf("serve takes no arguments but --check\n%s", usage)
		}
		return m.serve(ctx)
	case "console":
		return m.console(ctx)
	}
	return fmt.Errorf("unknown command %q\n%s", cmd, usage)
}

// Done is closed when the program has nothing more to do of its own
// accord: when Run has returned with nothing running, or when the
// console's input has ended. serve and record run until Close.
func (m *Main) Done() <-chan struct{} {
	m.doneOnce.Do(func() { m.done = make(chan struct{}) })
	return m.done
}

// finish closes Done.
func (m *Main) finish() {
	m.Done()
	m.finishOnce.Do(func() { close(m.done) })
}

// HTTPAddr returns the address the HTTP server is bound to, once Run has
// started serve or console: ROOMREC_HTTP_ADDR with the port it chose, if
// that was 0. It returns "" when ROOMREC_HTTP_ADDR is off or nothing runs.
func (m *Main) HTTPAddr() string {
	if m.core == nil {
		return ""
	}
	return m.core.httpAddr
}

// Close stops what Run started, in order: the bots stop taking commands,
// open files are finished (and indexed), queued messages and webhooks get
// a moment to go out, and the database is closed. Open files get
// shutdownGrace to finish, less if ctx ends sooner; the next start finishes
// what they leave. Close returns an error only for `roomrec record`, whose
// files were not all finished in time. It is for after Run has returned;
// calls after the first do nothing and return the same.
func (m *Main) Close(ctx context.Context) error {
	m.closeOnce.Do(func() { m.closeErr = m.close(ctx) })
	return m.closeErr
}

func (m *Main) close(ctx context.Context) error {
	if !m.started {
		return nil
	}
	if m.stopping != "" {
		m.log.Info(m.stopping)
	}
	m.cancel()
	m.bots.Wait()
	if m.core != nil {
		m.core.close(ctx)
	}
	if m.mgr != nil {
		sctx, cancel := context.WithTimeout(ctx, shutdownGrace)
		defer cancel()
		return m.mgr.Shutdown(sctx)
	}
	return nil
}

// running records what Run started, for Close, and returns the context
// its bots run in until Close.
func (m *Main) running(ctx context.Context, logger *slog.Logger, c *core, mgr *recording.Manager, stopping string) context.Context {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.log, m.core, m.mgr, m.stopping, m.cancel, m.started = logger, c, mgr, stopping, cancel, true
	return rctx
}

func (m *Main) config() (Config, *slog.Logger, error) {
	cfg, err := LoadConfig(m.Lookup, m.DotenvPath)
	if err != nil {
		return cfg, nil, fmt.Errorf("configuration:\n%w", err)
	}
	// Every log line passes through redact: errors from deep inside (a
	// signed stream URL, a Bot API URL with the token in its path) are
	// cleaned where they are written, not at each call site.
	text := slog.NewTextHandler(m.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel})
	m.secrets = redact.NewSecrets(cfg.Secrets()...)
	logger := slog.New(redact.NewHandler(text, m.secrets))
	return cfg, logger, nil
}

// newRecorder builds the Bilibili client and the recording Manager.
// hooks says who hears what the recorder learns.
func (m *Main) newRecorder(cfg Config, logger *slog.Logger, hooks recorderHooks) (*bilibili.Client, *recording.Manager, error) {
	hc, err := bilibili.NewHTTPClient(cfg.Network)
	if err != nil {
		return nil, nil, err
	}
	endpoints := bilibili.DefaultEndpoints()
	if cfg.BilibiliAPIURL != "" {
		endpoints = bilibili.SingleEndpoint(cfg.BilibiliAPIURL)
	}
	bopts := bilibili.Options{
		Endpoints: endpoints, Cookie: cfg.BilibiliCookie, OnLoggedOut: hooks.onLoggedOut,
		Budget: bilibili.NewBudget(rate.Limit(cfg.APIRate), cfg.APIBurst),
	}
	if m.Bilibili != nil {
		m.Bilibili(&bopts)
	}
	api := bilibili.NewClient(bopts, hc, logger.With(roomrec.LogComponent("bilibili")))
	if err := os.MkdirAll(cfg.RecordingsDir(), 0o755); err != nil {
		return nil, nil, fmt.Errorf("data directory %s is not writable: %w", cfg.DataDir, err)
	}
	// Streams get a client of their own: the API client's timeout would cut
	// a stream that is meant to last hours.
	streams := *hc
	streams.Timeout = 0
	opts := recording.Options{
		Dir:             cfg.RecordingsDir(),
		Quality:         cfg.Quality,
		MinFreeBytes:    cfg.MinFreeMB << 20,
		MaxFileBytes:    cfg.SplitSizeMB << 20,
		MaxFileDuration: cfg.SplitEvery,
		FileTemplate:    cfg.FileName,
		Container:       cfg.Container,
		StreamOrder:     cfg.StreamOrder,
		HTTPClient:      &streams,
		Logger:          logger.With(roomrec.LogComponent("recording")),
		Gate:            hooks.gate,
		OnAnchor:        hooks.onAnchor,
	}
	// The danmaku websocket does not go through hc: it is given the
	// network by name, or ipv4 would still reach the danmaku servers
	// over IPv6.
	opts.Danmaku.Network = bilibili.Network(cfg.Network)
	if m.Options != nil {
		m.Options(&opts)
	}
	return api, recording.NewManager(api, opts, hooks.onEvent), nil
}

// recorderHooks are who hear what the recorder learns; each may be nil.
type recorderHooks struct {
	onEvent     func(recording.Event)                              // every task's events
	onLoggedOut func()                                             // Bilibili ended the login's session
	gate        func(recording.Room, recording.BroadcastInfo) bool // which broadcasts are recorded
	onAnchor    func(recording.Room)                               // a room's anchor uid, learned
}

// acquireWhenAllowed starts recording a room, waiting out Bilibili's risk
// control on the lookup of its real id rather than giving up: someone who
// runs `roomrec record` wants the room recorded, not an error.
func acquireWhenAllowed(ctx context.Context, mgr *recording.Manager, id int64, logger *slog.Logger) (*recording.Task, error) {
	wait := time.Second
	for {
		task, err := mgr.Acquire(ctx, id, true)
		if !errors.Is(err, bilibili.ErrRiskControl) {
			return task, err
		}
		logger.Warn("Bilibili is refusing requests (risk control); trying the room again later", roomrec.LogRoom(id), roomrec.LogRetryIn(wait))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Minute)
	}
}

// record is `roomrec record ROOM...`: record with no chat at all, until
// Close.
func (m *Main) record(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("record needs at least one room: roomrec record 5440 https://live.bilibili.com/1")
	}
	var ids []int64
	for _, a := range args {
		id, err := bilibili.ParseRoomRef(a)
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	cfg, logger, err := m.config()
	if err != nil {
		return err
	}
	_, mgr, err := m.newRecorder(cfg, logger, recorderHooks{onEvent: logEvent(logger)})
	if err != nil {
		return err
	}
	for _, id := range ids {
		task, err := acquireWhenAllowed(ctx, mgr, id, logger)
		if err != nil && ctx.Err() != nil {
			// Interrupted while waiting out risk control: a clean stop.
			return mgr.Shutdown(context.Background())
		}
		if err != nil {
			mgr.Shutdown(context.Background())
			if errors.Is(err, bilibili.ErrRoomNotFound) {
				return fmt.Errorf("room %d does not exist on Bilibili", id)
			}
			return err
		}
		dir, _ := filepath.Abs(filepath.Join(cfg.RecordingsDir(), fmt.Sprint(task.Room().RoomID)))
		logger.Info("watching room", roomrec.LogRoom(task.Room().RoomID), slog.String("files", dir))
	}
	m.running(ctx, logger, nil, mgr, "stopping: finishing open files")
	return nil
}

// logEvent describes recording events in plain words for `roomrec record`.
func logEvent(logger *slog.Logger) func(recording.Event) {
	return func(e recording.Event) {
		room := roomrec.LogRoom(e.EventRoom().RoomID)
		switch e := e.(type) {
		case recording.LiveStarted:
			logger.Info("live: "+e.Title, room, slog.String("anchor", e.Anchor))
		case recording.FileClosed:
			if e.Err != nil {
				logger.Error("file not finished; the next start finishes it", room, slog.String(roomrec.KeyPath, e.Path), roomrec.LogErr(e.Err))
				break
			}
			logger.Info("file finished", room, slog.String(roomrec.KeyPath, e.Path), slog.Int64(roomrec.KeyBytes, e.Size), slog.Duration(roomrec.KeyDuration, e.Duration))
		case recording.LiveEnded:
			logger.Info("broadcast ended", room, slog.Duration(roomrec.KeyDuration, e.Duration), slog.Int("files", e.Files))
		case recording.TaskError:
			logger.Warn("problem: "+string(e.Kind), room, roomrec.LogErr(e.Err), slog.Bool("recoverable", e.Recoverable))
		}
	}
}
