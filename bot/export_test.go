package bot

import "time"

// SetRetry shortens the outbox's retry schedule for tests.
func (o *Outbox) SetRetry(first, max, giveUp time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.backoff, o.maxWait, o.giveUp = first, max, giveUp
}

// SetRiskNoticeAfter changes how long risk control lasts before chats hear
// of it.
func (n *Notifier) SetRiskNoticeAfter(d time.Duration) {
	n.problems.mu.Lock()
	defer n.problems.mu.Unlock()
	n.problems.riskAfter = d
}
