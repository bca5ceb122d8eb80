package recording

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"roomrec/bilibili"
)

// riskGate keeps every task off an API that has answered with risk control,
// so a thousand rooms do not each hammer a Bilibili that is already
// refusing. A -352 closes the one endpoint that answered it (it is usually
// about that call's signature or rate); an HTTP 412 comes from Bilibili's
// gateway and closes the whole host. While closed, calls fail at once with
// an error wrapping bilibili.ErrRiskControl. Each refusal in a row doubles
// the wait, up to a limit; a success opens the gate again.
type riskGate struct {
	API
	base, limit time.Duration
	now         func() time.Time
	stats       *counters

	mu     sync.Mutex
	closed map[string]*gateState // by endpoint name, or gateHost for the host
}

type gateState struct {
	until   time.Time
	strikes int
}

const gateHost = "host"

func newRiskGate(api API, base, limit time.Duration, now func() time.Time, stats *counters) *riskGate {
	return &riskGate{API: api, base: base, limit: limit, now: now, stats: stats, closed: map[string]*gateState{}}
}

// check returns an error if endpoint or the host is closed.
func (g *riskGate) check(endpoint string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	for _, key := range [...]string{gateHost, endpoint} {
		if s := g.closed[key]; s != nil && now.Before(s.until) {
			return fmt.Errorf("%s: %w: backing off for %s", endpoint, bilibili.ErrRiskControl, s.until.Sub(now).Round(time.Second))
		}
	}
	return nil
}

// observe closes or opens the gate after a call's result, and counts it.
func (g *riskGate) observe(endpoint string, err error) {
	g.stats.api(err, g.now())
	g.mu.Lock()
	defer g.mu.Unlock()
	if !errors.Is(err, bilibili.ErrRiskControl) {
		if err == nil {
			delete(g.closed, endpoint)
			delete(g.closed, gateHost)
		}
		return
	}
	key := endpoint
	var apiErr *bilibili.APIError
	if errors.As(err, &apiErr) && apiErr.HTTPStatus == http.StatusPreconditionFailed {
		key = gateHost
	}
	s := g.closed[key]
	if s == nil {
		s = &gateState{}
		g.closed[key] = s
	}
	s.strikes++
	s.until = g.now().Add(backoff(g.base, g.limit, s.strikes))
}

// guard makes a call through the gate. The gate is asked before the call
// and again once the request budget lets it go (bilibili.WithAdmission):
// a call queued behind a thousand others must not go out after Bilibili
// began refusing. A call the gate stops is not counted as a refusal.
func guard[T any](ctx context.Context, g *riskGate, endpoint string, call func(context.Context) (T, error)) (T, error) {
	if err := g.check(endpoint); err != nil {
		var zero T
		return zero, err
	}
	stopped := false
	ctx = bilibili.WithAdmission(ctx, func() error {
		err := g.check(endpoint)
		stopped = err != nil
		return err
	})
	v, err := call(ctx)
	if !stopped {
		g.observe(endpoint, err)
	}
	return v, err
}

func (g *riskGate) ResolveRoom(ctx context.Context, id int64) (bilibili.RoomInit, error) {
	return guard(ctx, g, "room_init", func(ctx context.Context) (bilibili.RoomInit, error) { return g.API.ResolveRoom(ctx, id) })
}

func (g *riskGate) RoomInfo(ctx context.Context, roomID int64) (bilibili.RoomInfo, error) {
	return guard(ctx, g, "getInfoByRoom", func(ctx context.Context) (bilibili.RoomInfo, error) { return g.API.RoomInfo(ctx, roomID) })
}

func (g *riskGate) RoomsOfAnchors(ctx context.Context, uids []int64) (map[int64]bilibili.RoomInfo, error) {
	return guard(ctx, g, "get_status_info_by_uids", func(ctx context.Context) (map[int64]bilibili.RoomInfo, error) { return g.API.RoomsOfAnchors(ctx, uids) })
}

func (g *riskGate) PlayInfo(ctx context.Context, roomID int64, qn int) (bilibili.PlayInfo, error) {
	return guard(ctx, g, "getRoomPlayInfo", func(ctx context.Context) (bilibili.PlayInfo, error) { return g.API.PlayInfo(ctx, roomID, qn) })
}

func (g *riskGate) DanmuInfo(ctx context.Context, roomID int64) (bilibili.DanmuInfo, error) {
	return guard(ctx, g, "getDanmuInfo", func(ctx context.Context) (bilibili.DanmuInfo, error) { return g.API.DanmuInfo(ctx, roomID) })
}
