package bilibili

import (
	"errors"
	"fmt"
	"net/http"
)

// Conditions callers branch on. Errors from the Client wrap these, so use
// errors.Is; errors.As with *APIError gives the code and message.
var (
	// ErrRoomNotFound: Bilibili does not know the room (code 60004).
	ErrRoomNotFound = errors.New("room not found")
	// ErrNotLive: the room has no stream now (playurl_info is null).
	ErrNotLive = errors.New("room is not live")
	// ErrRiskControl: Bilibili refused the request as suspicious (-352,
	// -412 or HTTP 412). Retrying at once makes it worse.
	ErrRiskControl = errors.New("rejected by Bilibili's risk control")
	// ErrProtocol: an answer did not have the shape this client knows, so
	// Bilibili has probably changed its API.
	ErrProtocol = errors.New("unexpected answer from Bilibili")
	// ErrLoggedOut: Bilibili answered -101, not logged in. While a login
	// is set this means it has expired or was ended elsewhere (and
	// OnLoggedOut has been told).
	ErrLoggedOut = errors.New("not logged in to Bilibili")
	// ErrRefreshNotConfirmed: a cookie refresh got new cookies but the
	// confirmation that retires the old session failed. The new cookies
	// work; see Refresh.
	ErrRefreshNotConfirmed = errors.New("cookie refresh not confirmed")
)

// Bilibili's codes for the conditions above.
const (
	codeRoomNotFound = 60004
	codeRiskControl  = -352
	codeRequestBlock = -412
	codeNotLoggedIn  = -101
)

// APIError is an answer from Bilibili that was not a success.
type APIError struct {
	Endpoint   string // which call, e.g. "getRoomPlayInfo"
	HTTPStatus int
	Code       int // Bilibili's code, 0 if the answer had none
	Message    string
}

func (e *APIError) Error() string {
	if e.Code != 0 {
		return fmt.Sprintf("%s: bilibili code %d: %s", e.Endpoint, e.Code, e.Message)
	}
	return fmt.Sprintf("%s: HTTP %d", e.Endpoint, e.HTTPStatus)
}

// Is makes errors.Is(err, ErrRiskControl), errors.Is(err, ErrRoomNotFound)
// and errors.Is(err, ErrLoggedOut) true for the codes that mean them.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrRiskControl:
		return e.Code == codeRiskControl || e.Code == codeRequestBlock || e.HTTPStatus == http.StatusPreconditionFailed
	case ErrRoomNotFound:
		return e.Code == codeRoomNotFound
	case ErrLoggedOut:
		return e.Code == codeNotLoggedIn
	}
	return false
}
