package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"roomrec/recording"
)

// metrics exposes the core's state in Prometheus format. Every value is
// read at scrape time from the recorder, the outbox and the disk, so the
// packages that own them need not know about Prometheus.
type metrics struct {
	c   *core
	dir string // recordings, for disk free
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("roomrec_"+name, help, labels, nil)
}

var (
	descRooms      = desc("rooms", "Rooms with a task, by state.", "state")
	descBytes      = desc("bytes_written_total", "Bytes in finished recordings since start.")
	descFiles      = desc("files_written_total", "Recordings finished since start.")
	descReconnects = desc("stream_reconnects_total", "Stream reconnects after a stream that delivered data broke.")
	descStreamQn   = desc("stream_qn", "The quality (qn) Bilibili serves each room being recorded: 10000 原画, 400 蓝光, 250 超清, 150 高清.", "room", "codec")
	descSegments   = desc("hls_bad_segments_total", "HLS segments that did not match their size and CRC32: refetched, or skipped when the second copy did not match either.", "result")
	descAPIErrors  = desc("bilibili_api_errors_total", "Failed Bilibili API calls, by kind.", "kind")
	descAPISuccess = desc("bilibili_last_success_timestamp_seconds", "When a Bilibili API call last succeeded.")
	descMessages   = desc("messages_total", "Chat messages (command replies on Telegram, alerts, notices, edits), by platform and result.", "platform", "result")
	descDiskFree   = desc("disk_free_bytes", "Free space where recordings are written.")
	descUnrepaired = desc("unrepaired_files", "Interrupted recordings the crash check at start could not repair; kept as they are and still writing, for a later start or a human.")
	descWebhooks   = desc("webhook_deliveries_total", "Webhook attempts since start, by URL (without its query) and result: delivered (confirmed with a 2xx), retried (failed; tried again later), given_up (a 4xx other than 408 and 429, or still failing 24 h after the event was queued).", "url", "result")
	descHookDepth  = desc("webhook_outbox_depth", "Webhook events queued for each URL that it has neither confirmed nor given up.", "url")
)

// webhookUnhealthy is how long a webhook URL may fail before /healthz
// reports it.
const webhookUnhealthy = time.Hour

func (m metrics) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(m, ch) }

func (m metrics) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	var watched, live, recordingNow float64
	for _, t := range m.c.mgr.List() {
		watched++
		if t.Live {
			live++
			if t.Record {
				recordingNow++
			}
		}
		if t.Stream.Qn != 0 {
			gauge(descStreamQn, float64(t.Stream.Qn), strconv.FormatInt(t.RoomID, 10), t.Stream.Codec)
		}
	}
	gauge(descRooms, watched, "watched")
	gauge(descRooms, live, "live")
	gauge(descRooms, recordingNow, "recording")
	s := m.c.mgr.Stats()
	counter(descBytes, float64(s.BytesWritten))
	counter(descFiles, float64(s.FilesWritten))
	counter(descReconnects, float64(s.Reconnects))
	counter(descSegments, float64(s.SegmentsRefetched), "refetched")
	counter(descSegments, float64(s.SegmentsSkipped), "skipped")
	counter(descAPIErrors, float64(s.RiskControl), "risk_control")
	counter(descAPIErrors, float64(s.ProtocolErrors), "protocol")
	counter(descAPIErrors, float64(s.OtherAPIErrors), "other")
	if !s.LastAPISuccess.IsZero() {
		gauge(descAPISuccess, float64(s.LastAPISuccess.Unix()))
	}
	for platform, st := range m.c.outbox.Stats() {
		counter(descMessages, float64(st.Sent), string(platform), "sent")
		counter(descMessages, float64(st.Failed), string(platform), "failed")
	}
	gauge(descUnrepaired, float64(m.c.store.Unrepaired()))
	if m.c.webhooks != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		hooks, err := m.c.webhooks.Status(ctx)
		cancel()
		if err == nil {
			for _, h := range hooks {
				counter(descWebhooks, float64(h.Delivered), h.URL, "delivered")
				counter(descWebhooks, float64(h.Retried), h.URL, "retried")
				counter(descWebhooks, float64(h.GivenUp), h.URL, "given_up")
				gauge(descHookDepth, float64(h.Pending), h.URL)
			}
		}
	}
	if free, err := recording.FreeSpace(m.dir); err == nil {
		gauge(descDiskFree, float64(free))
	}
}

// metricsHandler serves /metrics.
func metricsHandler(c *core, dir string) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics{c: c, dir: dir})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// healthHandler serves /healthz: 200 when the database answers and every
// bot is connected, 503 otherwise, with what an operator wants to see at a
// glance.
func healthHandler(c *core) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status := map[string]any{"database": "ok", "rooms": len(c.mgr.List())}
		code := http.StatusOK
		if err := c.store.Ping(r.Context()); err != nil {
			status["database"], code = "unreachable", http.StatusServiceUnavailable
		}
		if t := c.mgr.Stats().LastAPISuccess; !t.IsZero() {
			status["bilibili_last_success"] = t.UTC().Format(time.RFC3339)
		}
		status["messages"] = c.outbox.Stats()
		bots := c.botStates()
		status["bots"] = bots
		for _, up := range bots {
			if !up {
				code = http.StatusServiceUnavailable
			}
		}
		if hooks, unhealthy := webhookHealth(r.Context(), c, time.Now()); hooks != nil {
			status["webhooks"] = hooks
			if unhealthy {
				code = http.StatusServiceUnavailable
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(status)
	})
}

// webhookHealth says how each webhook URL is doing, for /healthz, and
// whether one has been failing for longer than webhookUnhealthy.
func webhookHealth(ctx context.Context, c *core, now time.Time) (map[string]any, bool) {
	if c.webhooks == nil {
		return nil, false
	}
	hooks, err := c.webhooks.Status(ctx)
	if err != nil || len(hooks) == 0 {
		return nil, false
	}
	out := map[string]any{}
	unhealthy := false
	for _, h := range hooks {
		st := map[string]any{"pending": h.Pending, "delivered": h.Delivered, "given_up": h.GivenUp}
		if !h.FailingSince.IsZero() {
			st["failing_since"] = h.FailingSince.UTC().Format(time.RFC3339)
			st["last_error"] = h.LastError
			if now.Sub(h.FailingSince) > webhookUnhealthy {
				st["unhealthy"] = true
				unhealthy = true
			}
		}
		out[h.URL] = st
	}
	return out, unhealthy
}
