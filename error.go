// Package roomrec holds what every part of roomrec shares: the errors a
// chat may be told and the log's attribute keys. It imports nothing of
// roomrec, so storage, bilibili and bot can all use it.
package roomrec

import (
	"errors"
	"fmt"
)

// Error codes: what kind of failure an Error is, for callers that branch
// on it.
const (
	EINVALID     = "invalid"     // the input is wrong: a bad room, a bad argument
	ENOTFOUND    = "not_found"   // what was asked for is not there
	ECONFLICT    = "conflict"    // it is there already
	EFORBIDDEN   = "forbidden"   // the sender may not do it: admins only, owners only
	EUNAVAILABLE = "unavailable" // the server cannot do it now or at all: Bilibili refusing, links off
	EINTERNAL    = "internal"    // anything else: a fault of roomrec or below it
)

// InternalMessage is what a chat is told of an error that is not an
// Error: the details are for the log, not for the chat.
const InternalMessage = "Something went wrong on my side. Please try again later."

// Error is a failure a user may be told of: Message is safe to show as it
// is, a sentence ready for a chat. Any other error is internal: it is
// logged in full and the chat hears only InternalMessage.
//
// Errors of one code match each other under errors.Is, so a sentinel such
// as storage.ErrNotFound matches every not-found error, whatever its
// message.
type Error struct {
	Code    string
	Message string
}

// Error returns the message.
func (e *Error) Error() string { return e.Message }

// Is reports whether target is an *Error of the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Errorf returns an Error with the code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first Error in err's chain, EINTERNAL
// when there is none, and "" for a nil err.
func ErrorCode(err error) string {
	return fromError(err, func(e *Error) string { return e.Code }, EINTERNAL)
}

// ErrorMessage returns the message of the first Error in err's chain,
// InternalMessage when there is none, and "" for a nil err.
func ErrorMessage(err error) string {
	return fromError(err, func(e *Error) string { return e.Message }, InternalMessage)
}

// fromError is get of the first Error in err's chain, internal when there
// is none, and "" for a nil err.
func fromError(err error, get func(*Error) string, internal string) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return get(e)
	}
	return internal
}
