package recording_test

import (
	"strings"
	"testing"
	"time"

	"roomrec/bilibili/bilibilitest"
	"roomrec/recording"
)

// hlsHarness is a harness whose room offers only the given streams.
func hlsHarness(t *testing.T, offer bilibilitest.Offer, opts func(*recording.Options)) *harness {
	t.Helper()
	h := newHarness(t, harnessConfig{opts: opts})
	h.room.SetOffer(offer)
	return h
}

func mustOffer(t *testing.T, spec string) bilibilitest.Offer {
	t.Helper()
	o, err := bilibilitest.ParseOffer(spec)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// recordBroadcast records one broadcast of d wall time and returns its
// files, each checked with ffprobe.
func (h *harness) recordBroadcast(d time.Duration) []recording.FileClosed {
	h.t.Helper()
	h.start()
	h.room.GoLive()
	waitCount[recording.FileOpened](h.t, h.events, 1, 5*time.Second)
	record(d)
	return h.endAndCollect()
}

func TestHLSOnlyRoomIsRecorded(t *testing.T) {
	for _, tt := range []struct {
		offer string
		ext   string
	}{
		{"fmp4/avc", ".flv"},
		{"ts/avc", ".flv"},
	} {
		t.Run(tt.offer, func(t *testing.T) {
			h := hlsHarness(t, mustOffer(t, tt.offer), nil)
			files := h.recordBroadcast(2 * time.Second)
			if len(files) != 1 {
				t.Fatalf("%d files, want 1: %s", len(files), describe(h.events.all()))
			}
			if !strings.HasSuffix(files[0].Path, tt.ext) || files[0].Interrupted {
				t.Errorf("file %+v, want a finished %s", files[0], tt.ext)
			}
			// 2 s of wall time at 4x is about 8 s of media.
			if files[0].Duration < 4*time.Second {
				t.Errorf("%s of media, want most of the broadcast", files[0].Duration)
			}
			if errs := ofType[recording.TaskError](h.events); len(errs) != 0 {
				t.Errorf("TaskErrors %+v for a stream roomrec records", errs)
			}
		})
	}
}
