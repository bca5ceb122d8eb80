package recording

import (
	"errors"
	"sync/atomic"
	"time"

	"roomrec/bilibili"
)

// Stats are running totals over every task of a Manager, for metrics and
// health checks.
type Stats struct {
	Reconnects     int64 // stream reconnects after a stream that delivered data broke
	FilesWritten   int64
	BytesWritten   int64 // in finished files
	RiskControl    int64 // API answers refused by risk control
	ProtocolErrors int64 // API answers in a shape roomrec does not know
	OtherAPIErrors int64 // network failures, timeouts, other codes
	// HLS segments that did not match their size and CRC32: fetched again,
	// and skipped (never written) when the second copy did not match either.
	SegmentsRefetched int64
	SegmentsSkipped   int64
	LastAPISuccess    time.Time
}

type counters struct {
	reconnects, files, bytesWritten    atomic.Int64
	risk, protocol, otherAPI, okAPIns  atomic.Int64
	segmentsRefetched, segmentsSkipped atomic.Int64
}

// api counts one API call's result. "Not live" and "not found" are
// answers, not failures.
func (c *counters) api(err error, now time.Time) {
	switch {
	case err == nil, errors.Is(err, bilibili.ErrNotLive), errors.Is(err, bilibili.ErrRoomNotFound):
		c.okAPIns.Store(now.UnixNano())
	case errors.Is(err, bilibili.ErrRiskControl):
		c.risk.Add(1)
	case errors.Is(err, bilibili.ErrProtocol):
		c.protocol.Add(1)
	default:
		c.otherAPI.Add(1)
	}
}

func (c *counters) snapshot() Stats {
	s := Stats{
		Reconnects: c.reconnects.Load(), FilesWritten: c.files.Load(), BytesWritten: c.bytesWritten.Load(),
		RiskControl: c.risk.Load(), ProtocolErrors: c.protocol.Load(), OtherAPIErrors: c.otherAPI.Load(),
		SegmentsRefetched: c.segmentsRefetched.Load(), SegmentsSkipped: c.segmentsSkipped.Load(),
	}
	if ns := c.okAPIns.Load(); ns != 0 {
		s.LastAPISuccess = time.Unix(0, ns)
	}
	return s
}
