package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"roomrec"
	"roomrec/storage"
)

// ErrCannotEdit is returned by a Sender that cannot edit a message.
var ErrCannotEdit = errors.New("platform cannot edit this message")

// Rejected wraps an error the platform will give again on every try: the
// chat is gone, the bot was removed or may not post, the message is
// invalid. The outbox gives up on it at once instead of retrying.
type Rejected struct{ Err error }

func (e *Rejected) Error() string { return "rejected: " + e.Err.Error() }
func (e *Rejected) Unwrap() error { return e.Err }

// RetryAfter is returned by a Sender when the platform asks to wait (HTTP
// 429 with retry_after).
type RetryAfter struct{ Wait time.Duration }

func (e *RetryAfter) Error() string { return fmt.Sprintf("rate limited; retry after %s", e.Wait) }

// Limits are a platform's sending limits. The defaults are Telegram's:
// about one message a second per chat, twenty a minute per group, thirty a
// second in all.
type Limits struct {
	PerChat      rate.Limit
	PerChatBurst int
	PerGroup     rate.Limit // for chats that are not private
	GroupBurst   int
	Global       rate.Limit
	GlobalBurst  int
}

// TelegramLimits are the limits Telegram documents for bots.
var TelegramLimits = Limits{
	PerChat: rate.Every(time.Second), PerChatBurst: 1,
	PerGroup: rate.Every(3 * time.Second), GroupBurst: 20,
	Global: 30, GlobalBurst: 30,
}

// DiscordLimits keep well inside Discord's: five messages per five seconds
// in a channel, fifty requests a second in all. discordgo also waits out
// the buckets Discord announces.
var DiscordLimits = Limits{
	PerChat: rate.Every(time.Second), PerChatBurst: 5,
	Global: 40, GlobalBurst: 40,
}

// Retrying. A platform that is down (network, 5xx) is retried with backoff
// for hours, since an alert that arrives late beats one that never does;
// a platform that rejects a message is not asked again.
const (
	firstBackoff = time.Second
	maxBackoff   = 2 * time.Minute
	giveUpAfter  = 6 * time.Hour
)

// job is one message to deliver: a new one, or an edit of messageID.
type job struct {
	chat      Chat
	msg       Message
	messageID string                     // edit this message instead of sending
	done      func(id string, err error) // see Send
	attempted int
	queued    time.Time
}

// Outbox delivers messages without ever making its caller wait: each chat
// has a queue and a goroutine that sends in order, within the platform's
// rate limits, retrying failures with backoff and honouring 429s.
type Outbox struct {
	senders map[storage.Platform]Sender
	limits  map[storage.Platform]Limits
	log     *slog.Logger

	mu      sync.Mutex
	global  map[storage.Platform]*rate.Limiter
	queues  map[string]*chatQueue
	wg      sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc
	backoff time.Duration // the first retry's wait; it doubles up to maxBackoff
	maxWait time.Duration
	giveUp  time.Duration                     // how long a failing message is retried
	stats   map[storage.Platform]*OutboxStats // by platform, guarded by mu
}

// OutboxStats count a platform's deliveries.
type OutboxStats struct {
	Sent   int64 // messages delivered (edits included)
	Failed int64 // messages given up on: rejected, or failing for hours
}

type chatQueue struct {
	jobs    []*job
	running bool
	perChat *rate.Limiter
	group   *rate.Limiter
}

// NewOutbox returns an Outbox. Register platforms with AddSender.
func NewOutbox(logger *slog.Logger) *Outbox {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Outbox{
		senders: map[storage.Platform]Sender{}, limits: map[storage.Platform]Limits{}, log: logger,
		global: map[storage.Platform]*rate.Limiter{}, queues: map[string]*chatQueue{},
		ctx: ctx, cancel: cancel, backoff: firstBackoff, maxWait: maxBackoff, giveUp: giveUpAfter, stats: map[storage.Platform]*OutboxStats{},
	}
}

// AddSender registers the sender and limits of a platform.
func (o *Outbox) AddSender(platform storage.Platform, s Sender, limits Limits) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.senders[platform] = s
	o.limits[platform] = limits
	o.stats[platform] = &OutboxStats{}
	o.global[platform] = rate.NewLimiter(limits.Global, limits.GlobalBurst)
}

// Send queues m for chat. done, if not nil, is called once the outbox is
// through with the message: with the platform's message id when it was
// delivered, or with the error when the outbox gave up on it (a
// *Rejected when the platform refused it).
func (o *Outbox) Send(chat Chat, m Message, done func(id string, err error)) {
	o.enqueue(&job{chat: chat, msg: m, done: done, queued: time.Now()})
}

// Edit queues an edit of a message sent before. If the platform cannot
// edit, the message is sent as a new one instead.
func (o *Outbox) Edit(chat Chat, messageID string, m Message) {
	o.enqueue(&job{chat: chat, msg: m, messageID: messageID, queued: time.Now()})
}

func (o *Outbox) enqueue(j *job) {
	// A chat that is a user (Chat.ToUser) has a user id here, which no
	// chat shares on Discord (ids are unique across users and
	// channels), and which on Telegram is the user's private chat with
	// the bot: the same chat, so rightly the same queue and limit.
	key := string(j.chat.Platform) + "/" + j.chat.ID
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ctx.Err() != nil {
		return
	}
	limits, ok := o.limits[j.chat.Platform]
	if !ok {
		o.log.Error("no sender for platform; message dropped", slog.String(roomrec.KeyPlatform, string(j.chat.Platform)))
		return
	}
	q := o.queues[key]
	if q == nil {
		q = &chatQueue{perChat: rate.NewLimiter(limits.PerChat, limits.PerChatBurst)}
		if !j.chat.Private && limits.PerGroup > 0 {
			q.group = rate.NewLimiter(limits.PerGroup, limits.GroupBurst)
		}
		o.queues[key] = q
	}
	q.jobs = append(q.jobs, j)
	if !q.running {
		q.running = true
		o.wg.Add(1)
		go o.drain(key, q)
	}
}

// drain delivers a chat's queue, then exits; the next message starts it
// again.
func (o *Outbox) drain(key string, q *chatQueue) {
	defer o.wg.Done()
	for {
		o.mu.Lock()
		if len(q.jobs) == 0 {
			q.running = false
			o.mu.Unlock()
			return
		}
		j := q.jobs[0]
		q.jobs = q.jobs[1:]
		sender, global := o.senders[j.chat.Platform], o.global[j.chat.Platform]
		o.mu.Unlock()
		o.deliver(j, sender, q, global)
	}
}

func (o *Outbox) deliver(j *job, sender Sender, q *chatQueue, global *rate.Limiter) {
	ctx := o.ctx
	for {
		for _, l := range []*rate.Limiter{q.perChat, q.group, global} {
			if l != nil {
				if err := l.Wait(ctx); err != nil {
					return // shutting down
				}
			}
		}
		j.attempted++
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		var id string
		var err error
		if j.messageID != "" {
			err = sender.Edit(sctx, j.chat, j.messageID, j.msg)
			if errors.Is(err, ErrCannotEdit) {
				j.messageID = ""
				id, err = sender.Send(sctx, j.chat, j.msg)
			}
		} else {
			id, err = sender.Send(sctx, j.chat, j.msg)
		}
		cancel()
		if err == nil {
			o.count(j.chat.Platform, true)
			if j.done != nil {
				j.done(id, nil)
			}
			return
		}
		wait := min(o.backoff<<min(j.attempted-1, 20), o.maxWait)
		var ra *RetryAfter
		if errors.As(err, &ra) {
			wait = ra.Wait
		}
		var rejected *Rejected
		if errors.As(err, &rejected) || time.Since(j.queued)+wait > o.giveUp || ctx.Err() != nil {
			o.count(j.chat.Platform, false)
			o.log.Error("message not delivered", roomrec.LogChat(j.chat.Platform, j.chat.ID), slog.Int(roomrec.KeyAttempts, j.attempted), roomrec.LogErr(err))
			if j.done != nil {
				j.done("", err)
			}
			return
		}
		o.log.Warn("send failed; retrying", roomrec.LogChat(j.chat.Platform, j.chat.ID), roomrec.LogRetryIn(wait), roomrec.LogErr(err))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
	}
}

func (o *Outbox) count(platform storage.Platform, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if ok {
		o.stats[platform].Sent++
	} else {
		o.stats[platform].Failed++
	}
}

// Stats returns delivery counts by platform.
func (o *Outbox) Stats() map[storage.Platform]OutboxStats {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[storage.Platform]OutboxStats{}
	for p, s := range o.stats {
		out[p] = *s
	}
	return out
}

// Close stops sending and waits for the chat goroutines; messages still
// queued are dropped.
func (o *Outbox) Close() {
	o.mu.Lock()
	o.cancel()
	o.mu.Unlock()
	o.wg.Wait()
}

// Flush waits until every queue is empty or ctx ends, for shutdown and
// tests.
func (o *Outbox) Flush(ctx context.Context) error {
	for {
		o.mu.Lock()
		busy := false
		for _, q := range o.queues {
			if q.running {
				busy = true
			}
		}
		o.mu.Unlock()
		if !busy {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
