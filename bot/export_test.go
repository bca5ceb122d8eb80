package bot

import "time"

// SetRetry shortens the outbox's retry schedule for tests.
func (o *Outbox) SetRetry(first, max, giveUp time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.backoff, o.maxWait, o.giveUp = first, max, giveUp
}
