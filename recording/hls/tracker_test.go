package hls

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// window builds a Bilibili-shaped media playlist holding segments
// [first, first+n), with an optional ENDLIST.
func window(t testing.TB, first uint64, n int, end bool) *Playlist {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-MEDIA-SEQUENCE:%d\n#EXT-X-TARGETDURATION:1\n#EXT-X-MAP:URI=\"h1700000000.m4s\"\n", first)
	for i := range uint64(n) {
		fmt.Fprintf(&b, "#EXTINF:1.00,1000|%x\n%d.m4s\n", first+i, first+i)
	}
	if end {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	p, err := Parse(strings.NewReader(b.String()), mustURL(t, playlistURL))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func seqs(segs []Segment) []uint64 {
	out := []uint64{}
	for _, s := range segs {
		out = append(out, s.Seq)
	}
	return out
}

func TestTracker(t *testing.T) {
	type reload struct {
		first    uint64
		n        int
		end      bool
		after    time.Duration // since the previous reload
		wantNew  string
		wantLost uint64
		wantRep  int
		behind   bool
		stalled  bool
	}
	tests := []struct {
		name    string
		reloads int
		after   time.Duration
		steps   []reload
	}{
		{
			name: "rolling window: the overlap is handed out once",
			steps: []reload{
				{first: 100, n: 6, wantNew: "[100 101 102 103 104 105]"},
				{first: 101, n: 6, wantNew: "[106]", wantRep: 5},
				{first: 103, n: 6, wantNew: "[107 108]", wantRep: 4},
			},
		},
		{
			name: "the same playlist again brings nothing",
			steps: []reload{
				{first: 100, n: 6, wantNew: "[100 101 102 103 104 105]"},
				{first: 100, n: 6, wantNew: "[]", wantRep: 6},
			},
		},
		{
			name: "an older copy from another CDN node is skipped",
			steps: []reload{
				{first: 100, n: 6, wantNew: "[100 101 102 103 104 105]"},
				{first: 97, n: 6, wantNew: "[]", wantRep: 6, behind: true},
				{first: 90, n: 6, wantNew: "[]", wantRep: 6, behind: true},
				{first: 102, n: 6, wantNew: "[106 107]", wantRep: 4},
			},
		},
		{
			name: "the window moved past unseen segments",
			steps: []reload{
				{first: 100, n: 6, wantNew: "[100 101 102 103 104 105]"},
				{first: 109, n: 6, wantNew: "[109 110 111 112 113 114]", wantLost: 3},
			},
		},
		{
			name: "an empty playlist, then segments",
			steps: []reload{
				{first: 0, n: 0, wantNew: "[]"},
				{first: 5, n: 2, wantNew: "[5 6]"},
			},
		},
		{
			name:    "stalled after three idle reloads",
			reloads: 3,
			steps: []reload{
				{first: 100, n: 6, wantNew: "[100 101 102 103 104 105]"},
				{first: 100, n: 6, wantNew: "[]", wantRep: 6},
				{first: 100, n: 6, wantNew: "[]", wantRep: 6},
				{first: 100, n: 6, wantNew: "[]", wantRep: 6, stalled: true},
				{first: 101, n: 6, wantNew: "[106]", wantRep: 5},
			},
		},
		{
			name:  "stalled after ten seconds by the caller's clock",
			after: 10 * time.Second,
			steps: []reload{
				{first: 100, n: 6, wantNew: "[100 101 102 103 104 105]"},
				{first: 100, n: 6, after: 6 * time.Second, wantNew: "[]", wantRep: 6},
				{first: 100, n: 6, after: 4 * time.Second, wantNew: "[]", wantRep: 6, stalled: true},
			},
		},
		{
			name:  "a playlist that never had a segment stalls too",
			after: 5 * time.Second,
			steps: []reload{
				{first: 0, n: 0, wantNew: "[]"},
				{first: 0, n: 0, after: 5 * time.Second, wantNew: "[]", stalled: true},
			},
		},
		{
			name: "endlist",
			steps: []reload{
				{first: 100, n: 3, wantNew: "[100 101 102]"},
				{first: 100, n: 4, end: true, wantNew: "[103]", wantRep: 3},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker(tt.reloads, tt.after)
			now := time.Date(2025, 1, 1, 20, 0, 0, 0, time.UTC)
			for i, st := range tt.steps {
				now = now.Add(st.after)
				u := tr.Update(window(t, st.first, st.n, st.end), now)
				if got := fmt.Sprint(seqs(u.New)); got != st.wantNew {
					t.Errorf("reload %d: new %s, want %s", i, got, st.wantNew)
				}
				if u.Lost != st.wantLost || u.Repeated != st.wantRep || u.Behind != st.behind || u.Stalled != st.stalled || u.Ended != st.end {
					t.Errorf("reload %d: lost %d repeated %d behind %v stalled %v ended %v; want %d %d %v %v %v",
						i, u.Lost, u.Repeated, u.Behind, u.Stalled, u.Ended, st.wantLost, st.wantRep, st.behind, st.stalled, st.end)
				}
			}
		})
	}
}

func TestTrackerReset(t *testing.T) {
	tr := NewTracker(2, 0)
	now := time.Now()
	tr.Update(window(t, 1000, 6, false), now)
	if next, ok := tr.Next(); !ok || next != 1006 {
		t.Fatalf("Next = %d, %v; want 1006, true", next, ok)
	}
	// The stream restarted and numbers from 1 again.
	u := tr.Update(window(t, 1, 6, false), now)
	if len(u.New) != 0 || !u.Behind {
		t.Fatalf("after a restart: new %v behind %v, want nothing new and behind", seqs(u.New), u.Behind)
	}
	tr.Reset()
	if _, ok := tr.Next(); ok {
		t.Error("Next after Reset says a segment was handed out")
	}
	u = tr.Update(window(t, 1, 6, false), now)
	if got := fmt.Sprint(seqs(u.New)); got != "[1 2 3 4 5 6]" || u.Lost != 0 || u.Idle != 0 {
		t.Errorf("after Reset: new %s lost %d idle %d; want [1 2 3 4 5 6] 0 0", got, u.Lost, u.Idle)
	}
	// The limits survive the reset.
	tr.Update(window(t, 1, 6, false), now)
	if u := tr.Update(window(t, 1, 6, false), now); !u.Stalled {
		t.Error("a Reset Tracker forgot its stall limit")
	}
}

func TestTrackerSegmentsKeepTheirURLs(t *testing.T) {
	tr := NewTracker(0, 0)
	u := tr.Update(window(t, 7, 1, false), time.Now())
	if got, want := u.New[0].URI, dir+"7.m4s"+signed; got != want {
		t.Errorf("URI = %q, want %q", got, want)
	}
}

// Segments handed out but not taken (the connection broke before they
// were fetched) are handed out again after Rewind, while the window still
// lists them; a Rewind to what is not handed out yet changes nothing.
func TestTrackerRewind(t *testing.T) {
	tr := NewTracker(0, 0)
	now := time.Now()
	if got := seqs(tr.Update(window(t, 10, 6, false), now).New); fmt.Sprint(got) != "[10 11 12 13 14 15]" {
		t.Fatalf("first window = %v", got)
	}
	tr.Rewind(12) // 10 and 11 were taken; 12 failed
	if got := seqs(tr.Update(window(t, 11, 6, false), now).New); fmt.Sprint(got) != "[12 13 14 15 16]" {
		t.Errorf("after Rewind(12): %v, want 12 on", got)
	}
	tr.Rewind(40)
	if got := seqs(tr.Update(window(t, 12, 6, false), now).New); fmt.Sprint(got) != "[17]" {
		t.Errorf("after a Rewind past the end: %v, want only the new 17", got)
	}
}
