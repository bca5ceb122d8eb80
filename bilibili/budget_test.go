package bilibili_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"roomrec/bilibili"
	"roomrec/bilibili/bilibilitest"
)

// maxInWindow returns the most requests of log that fall in any window of
// length d.
func maxInWindow(log []bilibilitest.Request, d time.Duration) int {
	most := 0
	for i := range log {
		n := 0
		for j := i; j < len(log) && log[j].At.Sub(log[i].At) < d; j++ {
			n++
		}
		most = max(most, n)
	}
	return most
}

// Every request of a client draws on its budget: however many goroutines
// call at once, Bilibili sees the burst and then the steady rate.
func TestBudgetBoundsEveryRequest(t *testing.T) {
	sim := bilibilitest.Start(t, bilibilitest.Config{})
	sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440})
	const perSecond, burst = 20, 5
	c := bilibili.NewClient(bilibili.Options{
		Endpoints: bilibili.SingleEndpoint(sim.URL()),
		Budget:    bilibili.NewBudget(perSecond, burst),
	}, &http.Client{}, nil)
	var wg sync.WaitGroup
	start := time.Now()
	for range 30 {
		wg.Go(func() {
			if _, err := c.RoomInfo(context.Background(), 5440); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// 30 requests: 5 at once, then 25 at 20 a second.
	if took := time.Since(start); took < 1100*time.Millisecond {
		t.Errorf("30 requests took %s; a budget of 20/s with bursts of 5 needs at least 1.25 s", took)
	}
	log := sim.RequestLog()
	if len(log) != 30 {
		t.Fatalf("%d requests reached the server, want 30", len(log))
	}
	// Any window of 250 ms holds the burst plus what refills in it (5),
	// give or take a request at the window's edge.
	if n := maxInWindow(log, 250*time.Millisecond); n > burst+perSecond/4+1 {
		t.Errorf("%d requests within 250 ms; the budget allows %d", n, burst+perSecond/4+1)
	}
}

// A patient call waits while the budget is short, and lets urgent calls
// through first: a burst of patient calls leaves tokens for a call that
// someone is waiting on.
func TestPatientCallsLeaveRoomForUrgentOnes(t *testing.T) {
	sim := bilibilitest.Start(t, bilibilitest.Config{})
	sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440})
	c := bilibili.NewClient(bilibili.Options{
		Endpoints: bilibili.SingleEndpoint(sim.URL()),
		Budget:    bilibili.NewBudget(4, 5),
	}, &http.Client{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for range 50 {
		wg.Go(func() { c.RoomInfo(bilibili.Patient(ctx), 5440) })
	}
	time.Sleep(time.Second) // the patient ones have drained what they may
	for i := range 2 {
		start := time.Now()
		if _, err := c.RoomInfo(context.Background(), 5440); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 100*time.Millisecond {
			t.Errorf("urgent call %d waited %s behind patient ones", i+1, took)
		}
	}
}

// A budget of rate.Inf holds nothing back.
func TestUnlimitedBudget(t *testing.T) {
	b := bilibili.NewBudget(rate.Inf, 0)
	if b.Rate() != rate.Inf {
		t.Errorf("Rate = %v, want Inf", b.Rate())
	}
	sim := bilibilitest.Start(t, bilibilitest.Config{})
	sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440})
	c := bilibili.NewClient(bilibili.Options{Endpoints: bilibili.SingleEndpoint(sim.URL()), Budget: b}, &http.Client{}, nil)
	start := time.Now()
	for range 20 {
		if _, err := c.RoomInfo(bilibili.Patient(context.Background()), 5440); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("20 unlimited calls took %s", took)
	}
}
