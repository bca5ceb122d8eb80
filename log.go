package roomrec

import (
	"log/slog"
	"time"
)

// Log attribute keys. Every package names the same thing the same way, so
// one search of the log finds a room's or a chat's lines wherever they
// were written.
const (
	KeyComponent = "component" // which part of roomrec wrote the line
	KeyErr       = "err"
	KeyRoom      = "room"     // a room's real id
	KeyChat      = "chat"     // a chat, as platform/id
	KeyPlatform  = "platform" // telegram, discord, console
	KeyRetryIn   = "retry_in" // how long until a failed step is tried again
	KeyPath      = "path"     // a file
	KeyUname     = "uname"    // a Bilibili account's name
	KeyReason    = "reason"
	KeyAttempts  = "attempts"
	KeyDuration  = "duration"
	KeyBytes     = "bytes"
	KeyEvent     = "event"
)

// LogComponent names the part of roomrec a logger is for.
func LogComponent(name string) slog.Attr { return slog.String(KeyComponent, name) }

// LogErr is an error in full, for the log only.
func LogErr(err error) slog.Attr { return slog.Any(KeyErr, err) }

// LogRoom names a room by its real id.
func LogRoom(id int64) slog.Attr { return slog.Int64(KeyRoom, id) }

// LogChat names a chat as platform/id.
func LogChat[P ~string](platform P, id string) slog.Attr {
	return slog.String(KeyChat, string(platform)+"/"+id)
}

// LogRetryIn is the wait before a failed step is tried again.
func LogRetryIn(wait time.Duration) slog.Attr { return slog.Duration(KeyRetryIn, wait) }
