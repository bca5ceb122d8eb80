package webhook

import (
	"testing"
	"time"
)

// The defaults are the promises in the README: a hung receiver is cut
// after 10 s, retries back off to every 2 minutes, for 24 hours.
func TestDefaults(t *testing.T) {
	o := Options{}.withDefaults()
	if o.Timeout != 10*time.Second || o.MaxBackoff != 2*time.Minute || o.GiveUpAfter != 24*time.Hour || o.Backoff != time.Second {
		t.Errorf("defaults: timeout %s, backoff %s to %s, give up after %s", o.Timeout, o.Backoff, o.MaxBackoff, o.GiveUpAfter)
	}
	w := &worker{d: &Deliverer{opts: o}}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 5: 16 * time.Second, 8: 2 * time.Minute, 50: 2 * time.Minute} {
		if got := w.backoff(n, 0); got < want*4/5 || got > want*6/5 {
			t.Errorf("wait before retry %d = %s, want %s ±20%%", n, got, want)
		}
	}
	if got := w.backoff(1, time.Hour); got != 2*time.Minute {
		t.Errorf("a Retry-After of an hour waits %s, want the 2 min cap", got)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pw@hooks.example/brec?token=abc#x": "https://hooks.example/brec",
		"http://127.0.0.1:8080/":                         "http://127.0.0.1:8080/",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
