package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver

	"roomrec"
	"roomrec/migrations"
)

// Errors callers branch on. Each error of the store that a user may see is
// a *roomrec.Error of one of these codes with a message for the user who
// asked, and errors.Is matches it to the sentinel of its code.
var (
	ErrNotFound = &roomrec.Error{Code: roomrec.ENOTFOUND, Message: "Not found."}
	ErrConflict = &roomrec.Error{Code: roomrec.ECONFLICT, Message: "Conflict."}
)

// notFound returns a not-found error (ErrNotFound) with a message for users.
func notFound(format string, args ...any) error {
	return roomrec.Errorf(roomrec.ENOTFOUND, format, args...)
}

// changedOne returns the error of a statement, or, when it changed no row,
// a not-found error with the formatted message.
func changedOne(res sql.Result, err error, format string, args ...any) error {
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound(format, args...)
	}
	return nil
}

// Options configure a Store.
type Options struct {
	RecordingsDir string           // where recording paths are relative to
	Now           func() time.Time // the clock; default time.Now
	Logger        *slog.Logger
	Migrations    fs.FS // default migrations.FS; tests inject broken ones
	// DanmakuConnected reports whether roomrec's danmaku websocket for a
	// room is up, for the webhook events (DanmakuConnected); nil: never.
	DanmakuConnected func(roomID int64) bool
}

// Store is roomrec's database. It is safe for concurrent use.
type Store struct {
	db     *sql.DB
	opts   Options
	log    *slog.Logger
	opened int64 // when this process opened the database, unix ms

	unrepaired atomic.Int64 // files the last Reconcile could not repair

	hooksOn  atomic.Bool // RegisterWebhooks named a URL: events are queued
	hookWake hookSignal  // fired when a transaction that queued events commits
	hookTxs  sync.Map    // *sql.Tx → true: the transaction queued an event
}

// busyTimeout is how long a write waits for another to finish before it
// fails; long, since failing loses a user's command.
const busyTimeout = 10 * time.Second

// Open opens (creating if needed) the database at path and brings its
// schema up to date. It refuses a database written by a newer roomrec.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Migrations == nil {
		opts.Migrations = migrations.FS
	}
	// WAL lets readers work while one writer writes; immediate
	// transactions take the write lock at BEGIN, so a read-then-write
	// transaction waits for another instead of failing half way.
	q := url.Values{
		"_journal_mode": {"WAL"},
		"_foreign_keys": {"on"},
		"_busy_timeout": {strconv.Itoa(int(busyTimeout.Milliseconds()))},
		"_txlock":       {"immediate"},
		"_synchronous":  {"NORMAL"},
	}
	// A first run on a fresh machine has no data directory yet.
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create data directory for %s: %w", path, err)
	}
	// The database holds the Bilibili login's cookie: readable by roomrec
	// alone. SQLite gives its -wal and -shm files the main file's mode.
	if err := ownerOnly(path); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	s := &Store{db: db, opts: opts, log: opts.Logger}
	s.opened = s.now()
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// ownerOnly creates the database file if needed and makes it, and the
// WAL files of an earlier run, readable and writable by its owner alone.
func ownerOnly(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open database %s: %w", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("restrict database %s to its owner: %w", p, err)
		}
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

func (s *Store) now() int64 { return s.opts.Now().UnixMilli() }

// migrate applies every migration newer than the database's user_version,
// each in its own transaction with the version bump, so a failure leaves
// the database at the last good version.
func (s *Store) migrate(ctx context.Context) error {
	names, err := fs.Glob(s.opts.Migrations, "*.sql")
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	slices.Sort(names)
	var current int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current > len(names) {
		return fmt.Errorf("the database is at schema version %d but this roomrec knows only %d: it was written by a newer roomrec; upgrade roomrec or restore a backup", current, len(names))
	}
	for i, name := range names {
		version := i + 1
		if n, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0]); err != nil || n != version {
			return fmt.Errorf("migration %s is out of sequence: want %04d_*.sql", name, version)
		}
		if version <= current {
			continue
		}
		body, err := fs.ReadFile(s.opts.Migrations, name)
		if err != nil {
			return fmt.Errorf("read migration %s: %w", name, err)
		}
		err = s.write(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", version))
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
		s.log.Info("database migrated", slog.String("migration", name))
	}
	return nil
}

// write runs fn in a transaction and commits it if fn succeeds. Every
// writing method of the Store goes through it.
func (s *Store) write(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	defer s.hookTxs.Delete(tx)
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if _, queued := s.hookTxs.Load(tx); queued {
		s.hookWake.fire()
	}
	return nil
}
