package telegram

import "time"

// SetSendTimeout changes how long a Bot API call may take, for a test, and
// returns a function that restores it.
func SetSendTimeout(d time.Duration) (restore func()) {
	old := sendTimeout
	sendTimeout = d
	return func() { sendTimeout = old }
}
