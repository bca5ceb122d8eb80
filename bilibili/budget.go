package bilibili

import (
	"context"
	"time"

	"golang.org/x/time/rate"
)

// The budget Bilibili tolerates from one address: about two API requests a
// second, in bursts of a few. Faster than that, and a thousand rooms' worth
// of start-up is answered with -352 and HTTP 412.
const (
	DefaultRate  rate.Limit = 2
	DefaultBurst            = 5
)

// Budget is the one allowance of API requests every call of a Client
// draws from: a token bucket with a steady rate and a small burst. A call
// someone is waiting on (play info for a room that just went live, a
// chat's /record) takes the next token. A patient call (see Patient) takes
// one only while the bucket keeps a reserve beyond it, so a thousand
// websocket connects queued at start-up never stand between a live room
// and its stream.
type Budget struct {
	lim     *rate.Limiter
	reserve float64
	patient chan struct{} // one patient caller watches the bucket at a time
}

// NewBudget returns a budget of r requests a second in bursts of burst. A
// rate of rate.Inf (or a burst below 1) means no limit at all.
func NewBudget(r rate.Limit, burst int) *Budget {
	if r == rate.Inf || burst < 1 {
		return &Budget{}
	}
	// Patient calls leave two tokens, or all but one of a smaller burst,
	// for the calls of a room that goes live while they run.
	return &Budget{
		lim:     rate.NewLimiter(r, burst),
		reserve: float64(min(2, burst-1)),
		patient: make(chan struct{}, 1),
	}
}

// Rate is the budget's steady rate; rate.Inf for none.
func (b *Budget) Rate() rate.Limit {
	if b == nil || b.lim == nil {
		return rate.Inf
	}
	return b.lim.Limit()
}

// wait blocks until the budget allows one request, or ctx ends.
func (b *Budget) wait(ctx context.Context) error {
	if b == nil || b.lim == nil {
		return nil
	}
	if !isPatient(ctx) {
		return b.lim.Wait(ctx)
	}
	select {
	case b.patient <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-b.patient }()
	for {
		now := time.Now()
		short := b.reserve + 1 - b.lim.TokensAt(now)
		if short <= 0 && b.lim.AllowN(now, 1) {
			return nil
		}
		// Sleep until the bucket holds the reserve and one more; an
		// urgent call taking tokens meanwhile only means another round.
		d := time.Duration(max(short, 0.05) / float64(b.lim.Limit()) * float64(time.Second))
		t := time.NewTimer(max(d, time.Millisecond))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

type patientKey struct{}

// Patient marks ctx's Bilibili calls as patient: background work (danmaku
// connects, the safety-net poll) that may wait for the budget as long as
// it takes, behind every call that someone is waiting on.
func Patient(ctx context.Context) context.Context {
	return context.WithValue(ctx, patientKey{}, true)
}

func isPatient(ctx context.Context) bool {
	p, _ := ctx.Value(patientKey{}).(bool)
	return p
}

type admitKey struct{}

// WithAdmission makes ctx's Bilibili calls ask admit, once the budget has
// let them through and just before they are sent, whether they may still
// go: a call that waited minutes for its turn must not go out to a
// Bilibili that began refusing meanwhile. An error from admit is the
// call's error.
func WithAdmission(ctx context.Context, admit func() error) context.Context {
	return context.WithValue(ctx, admitKey{}, admit)
}

// admitted asks ctx's admission check, if any.
func admitted(ctx context.Context) error {
	if admit, ok := ctx.Value(admitKey{}).(func() error); ok {
		return admit()
	}
	return nil
}
