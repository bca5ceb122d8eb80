package recording

import (
	"cmp"
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"roomrec"
	"roomrec/bilibili"
	"roomrec/bilibili/danmaku"
)

// watchedCmds are the danmaku messages a task acts on or saves; the rest are
// never parsed.
var watchedCmds = map[string]bool{
	"LIVE": true, "PREPARING": true, "ROOM_CHANGE": true,
	"CUT_OFF": true, "CUT_OFF_V2": true,
	"DANMU_MSG": true, "SUPER_CHAT_MESSAGE": true, "SEND_GIFT": true, "GUARD_BUY": true,
}

// Where a task meets a problem, for reportError.
const (
	sourcePoll     = "poll"
	sourceDanmaku  = "danmaku"
	sourceDownload = "download"
)

// maxProtocolErrors is how many unreadable room answers in a row mean
// Bilibili's API has changed, rather than one bad answer.
const maxProtocolErrors = 3

// stableConnection is how long a websocket must stay up before its reconnect
// backoff starts again from the beginning.
const stableConnection = time.Minute

// watcher learns the room's state: pushes from the danmaku websocket first,
// and the Manager's poller (a slow bulk poll) as a safety net for lost
// pushes and for rooms whose websocket is refused.
type watcher struct {
	t *Task
}

func newWatcher(t *Task) *watcher {
	return &watcher{t: t}
}

func (w *watcher) run(ctx context.Context) {
	checked := w.t.poller.add(w.t)
	defer w.t.poller.remove(w.t)
	select {
	case <-checked:
	case <-ctx.Done():
		return
	}
	w.listen(ctx)
}

// pollNow asks for a check of the room soon, without waiting for it.
func (w *watcher) pollNow() { w.t.poller.now(w.t) }

// listen keeps a danmaku websocket open, reconnecting with backoff and
// jitter, with a fresh token each time (a rejected token is the usual reason
// a reconnect fails).
func (w *watcher) listen(ctx context.Context) {
	t := w.t
	failures := 0
	for connected := false; ctx.Err() == nil; {
		conn, err := w.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			if k := classify(err); k == ErrorRiskControl {
				t.reportError(k, sourceDanmaku, err, true)
			}
			wait := backoff(t.opts.RetryBackoff, t.opts.MaxBackoff, failures)
			t.log.Debug("danmaku connect failed", roomrec.LogErr(err), roomrec.LogRetryIn(wait))
			sleep(ctx, wait)
			continue
		}
		t.recovered(ErrorRiskControl, sourceDanmaku)
		// A push may have been missed while disconnected.
		if connected {
			w.pollNow()
		}
		connected = true
		since := time.Now()
		t.log.Debug("danmaku connected", slog.String("url", conn.URL()))
		t.danmaku.Store(true)
		err = conn.Run(ctx, w.handle)
		t.danmaku.Store(false)
		conn.Close()
		if ctx.Err() != nil {
			return
		}
		if time.Since(since) > stableConnection {
			failures = 0
		}
		failures++
		wait := backoff(t.opts.RetryBackoff, t.opts.MaxBackoff, failures)
		t.log.Info("danmaku connection lost; reconnecting", roomrec.LogErr(err), roomrec.LogRetryIn(wait))
		sleep(ctx, wait)
	}
}

func (w *watcher) dial(ctx context.Context) (*danmaku.Conn, error) {
	t := w.t
	// Connecting is background work: a thousand rooms' connects at
	// start-up wait behind every call someone is waiting on.
	info, err := t.api.DanmuInfo(bilibili.Patient(ctx), t.id)
	if err != nil {
		return nil, err
	}
	return danmaku.Dial(ctx, danmaku.Config{
		URLs:              info.URLs,
		RoomID:            t.id,
		UID:               info.UID,
		Token:             info.Token,
		Buvid:             info.Buvid,
		Header:            t.api.WebsocketHeader(),
		Dialer:            t.opts.Danmaku.websocketDialer(),
		HeartbeatInterval: t.opts.Danmaku.HeartbeatInterval,
		ReadTimeout:       t.opts.Danmaku.ReadTimeout,
		Want:              func(cmd string) bool { return watchedCmds[cmd] },
		Logger:            t.log,
	})
}

// websocketWriteBuffers lends every danmaku connection its write buffer
// for the moment it writes.
var websocketWriteBuffers = &sync.Pool{}

// websocketDialer dials on the configured network, so ROOMREC_NETWORK=ipv4
// keeps the websocket off IPv6 as it keeps the API and stream requests.
// Like the HTTP transport, it honours the proxy environment variables; the
// network then applies to the connection to the proxy.
func (o DanmakuOptions) websocketDialer() *websocket.Dialer {
	network := cmp.Or(o.Network, "tcp")
	dial := o.Dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	return &websocket.Dialer{
		HandshakeTimeout: 10 * time.Second,
		Proxy:            http.ProxyFromEnvironment,
		// A danmaku connection reads a few small frames a minute and
		// writes one heartbeat: a small read buffer, and write buffers
		// shared by every connection between writes, keep a thousand
		// idle rooms cheap.
		ReadBufferSize:  1024,
		WriteBufferPool: websocketWriteBuffers,
		NetDialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return dial(ctx, network, addr)
		},
	}
}

// handle turns danmaku events into signals, and hands chat messages to the
// download in progress to be saved beside the video.
func (w *watcher) handle(ev danmaku.Event) {
	t := w.t
	switch ev := ev.(type) {
	case danmaku.Live:
		t.signal(livePush{liveKey: ev.LiveKey, liveTime: ev.LiveTime})
	case danmaku.Preparing:
		t.signal(endPush{})
	case danmaku.RoomChange:
		t.signal(titlePush{title: ev.Title, area: ev.AreaName, parentArea: ev.ParentAreaName})
	case danmaku.CutOff:
		t.log.Warn("room cut off by Bilibili", slog.String(roomrec.KeyReason, ev.Message))
	case danmaku.Danmaku, danmaku.SuperChat, danmaku.Gift, danmaku.GuardBuy:
		// The state, not the run loop: saving never waits for the loop.
		if s := t.state.Load().session; s != nil {
			s.saveDanmaku(ev)
		}
	}
}
