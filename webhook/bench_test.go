package webhook_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkDelivery measures one URL's throughput on loopback, each event
// confirmed before the next is posted: the events of b.N broadcasts are
// queued first, then timed from the start of delivery until the receiver
// has them all.
//
//	go test -run '^$' -bench Delivery -benchtime 200x ./webhook/
func BenchmarkDelivery(b *testing.B) {
	s := openStore(b, filepath.Join(b.TempDir(), "roomrec.db"))
	defer s.Close()
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { got.Add(1) }))
	defer srv.Close()
	if err := s.RegisterWebhooks(context.Background(), []string{srv.URL}); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	for i := range b.N {
		broadcast(b, s, int64(1+i%50), t0.Add(time.Duration(i)*time.Second))
	}
	want := int64(len(sequence) * b.N)
	b.ResetTimer()
	start(b, s, fast(srv.URL))
	for got.Load() < want {
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(want), "µs/event")
}
