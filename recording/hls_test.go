package recording_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"roomrec/bilibili/bilibilitest"
	"roomrec/recording"
	"roomrec/recording/flv"
	"roomrec/recording/mp4"
)

// hlsHarness is a harness whose room offers only the given streams.
func hlsHarness(t *testing.T, offer bilibilitest.Offer, opts func(*recording.Options)) *harness {
	t.Helper()
	return hlsHarnessAt(t, 0, offer, opts)
}

// hlsHarnessAt is hlsHarness with the simulator at speed (0: the default).
// Tests of what a fault loses run in real time: sped up, a playlist window
// of six one-second segments lasts a fraction of the reload interval a
// player keeps to.
func hlsHarnessAt(t *testing.T, speed float64, offer bilibilitest.Offer, opts func(*recording.Options)) *harness {
	t.Helper()
	h := newHarness(t, harnessConfig{speed: speed, opts: opts})
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

// HEVC is recorded from every format Bilibili serves it in, into the
// container ROOMREC_CONTAINER asks for: auto puts it in MP4 (which ffmpeg
// 5.1 reads), flv writes codec id 12, mp4 writes MP4; H.264 goes into MP4
// on request too.
func TestContainers(t *testing.T) {
	for _, tt := range []struct {
		offer     string
		container recording.Container
		ext       string
	}{
		{"fmp4/hevc", recording.ContainerAuto, ".mp4"},
		{"ts/hevc", recording.ContainerAuto, ".mp4"},
		{"flv/hevc", recording.ContainerAuto, ".mp4"},
		{"fmp4/hevc", recording.ContainerMP4, ".mp4"},
		{"fmp4/hevc", recording.ContainerFLV, ".flv"},
		{"flv/hevc", recording.ContainerFLV, ".flv"},
		{"flv/avc", recording.ContainerMP4, ".mp4"},
		{"ts/avc", recording.ContainerMP4, ".mp4"},
	} {
		t.Run(tt.offer+"-"+string(tt.container), func(t *testing.T) {
			h := hlsHarness(t, mustOffer(t, tt.offer), func(o *recording.Options) { o.Container = tt.container })
			var files []recording.FileClosed
			if tt.ext == ".flv" && strings.HasSuffix(tt.offer, "hevc") {
				// ffmpeg before 8.0 cannot read codec id 12: read the file
				// back with our FLV reader, and probe it converted to MP4.
				h.start()
				h.room.GoLive()
				waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
				record(2 * time.Second)
				h.room.EndLive()
				waitCount[recording.LiveEnded](t, h.events, 1, 10*time.Second)
				files = ofType[recording.FileClosed](h.events)
				for _, f := range files {
					checkHEVCFLV(t, filepath.Join(h.dir, f.Path), f.Duration)
				}
			} else {
				files = h.recordBroadcast(2 * time.Second)
			}
			if len(files) != 1 || !strings.HasSuffix(files[0].Path, tt.ext) || files[0].Duration < 4*time.Second {
				t.Errorf("files %s, want one %s of about 8 s", describeFiles(files), tt.ext)
			}
		})
	}
}

func describeFiles(files []recording.FileClosed) string {
	var b strings.Builder
	for _, f := range files {
		fmt.Fprintf(&b, "\n  %s %s interrupted=%v", f.Path, f.Duration, f.Interrupted)
	}
	return b.String()
}

// checkHEVCFLV reads an FLV of HEVC (codec id 12) with our reader: every
// tag whole, video in HEVC, each stream's timestamps never going back; then
// converts it with our MP4 writer and probes the result, whose duration
// must match the file's.
func checkHEVCFLV(t *testing.T, path string, want time.Duration) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := flv.NewReader(bufio.NewReader(f))
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "converted.mp4")
	mf, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer mf.Close()
	w := mp4.NewFileWriter(mf, mf)
	if err := w.WriteHeader(); err != nil {
		t.Fatal(err)
	}
	last := map[flv.TagType]int64{}
	video := 0
	for {
		tag, err := r.ReadTag()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(path), err)
		}
		if tag.Type == flv.TagScript {
			_, rest, err := flv.DecodeAMF(tag.Data)
			if err == nil {
				var meta any
				meta, _, err = flv.DecodeAMF(rest)
				props, _ := meta.([]flv.Property)
				if id, _ := flv.Lookup(props, "videocodecid"); id != float64(flv.CodecHEVC) {
					t.Errorf("onMetaData videocodecid = %v, want 12", id)
				}
			}
			if err != nil {
				t.Errorf("onMetaData: %v", err)
			}
			continue
		}
		if tag.Type == flv.TagVideo {
			video++
			if c := flv.VideoCodec(tag.Data); c != flv.CodecHEVC {
				t.Fatalf("video tag with codec %d, want HEVC (12)", c)
			}
		}
		if prev, ok := last[tag.Type]; ok && tag.Timestamp < prev {
			t.Errorf("%s: %s timestamp goes back from %d to %d", filepath.Base(path), tag.Type, prev, tag.Timestamp)
		}
		last[tag.Type] = tag.Timestamp
		if err := w.WriteTag(tag); err != nil {
			t.Fatalf("convert: %v", err)
		}
	}
	if _, err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if video < 30 {
		t.Errorf("%d video tags", video)
	}
	if got := probe(t, out); (got - want).Abs() > 500*time.Millisecond {
		t.Errorf("converted file plays %s, the recording says %s", got, want)
	}
}

// When the stream's URL expires mid-broadcast (403), the playlist answers
// 404 for a while, stops growing (everywhere, or on the node in use), or a
// CDN answers with older copies, the recorder gets fresh play info where
// that helps and carries on in the same file, losing at most what the
// fault kept from it.
func TestHLSFaultsKeepOneFile(t *testing.T) {
	for _, tt := range []struct {
		name     string
		fault    func(r *bilibilitest.Room)
		playInfo bool          // the fault needs fresh play info
		maxLoss  time.Duration // media the fault may cost
	}{
		{"expired", func(r *bilibilitest.Room) { r.ExpireURLs() }, true, time.Second},
		{"playlist 404", func(r *bilibilitest.Room) { r.PlaylistNotFoundFor(2 * time.Second) }, true, 2 * time.Second},
		{"stall", func(r *bilibilitest.Room) { r.StallPlaylist(3 * time.Second) }, true, 2 * time.Second},
		{"node stall", func(r *bilibilitest.Room) { r.StallPlaylistNode(time.Minute) }, true, time.Second},
		{"stale windows", func(r *bilibilitest.Room) { r.ServeStalePlaylists(4) }, false, time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := hlsHarnessAt(t, 1, mustOffer(t, "fmp4/avc"), nil)
			h.start()
			h.room.GoLive()
			waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
			began := time.Now()
			record(2 * time.Second)
			playInfo := h.sim.Requests(bilibilitest.PathPlayInfo)
			tt.fault(h.room)
			record(6 * time.Second)
			live := time.Since(began)
			files := h.endAndCollect()
			if len(files) != 1 {
				t.Fatalf("%d files, want one continuous file: %s", len(files), describeFiles(files))
			}
			// The file starts with the segments already in the window
			// when the room went live (up to 6 s) and ends at the end.
			if d := files[0].Duration; d < live-tt.maxLoss-time.Second || d > live+7*time.Second {
				t.Errorf("%s of media after %s live; the fault may cost %s", d, live.Round(time.Millisecond), tt.maxLoss)
			}
			if tt.playInfo && h.sim.Requests(bilibilitest.PathPlayInfo) == playInfo {
				t.Error("no fresh play info after the fault")
			}
		})
	}
}

// A reconnect to an HLS stream takes up at the next segment by sequence
// number, so nothing it fetches is a replay of what was written, even when
// its frames repeat earlier ones byte for byte (the simulator's 4 s loop;
// on Bilibili, a still picture over silence). Here the URL expires after
// more than a loop has been written: the recording must not lose the loop
// that follows, as it did when the repairer took those frames for a CDN's
// replay.
func TestHLSReconnectKeepsRepeatingFrames(t *testing.T) {
	for _, offer := range []string{"fmp4/avc", "ts/avc"} {
		t.Run(offer, func(t *testing.T) {
			t.Parallel()
			h := hlsHarnessAt(t, 1, mustOffer(t, offer), nil)
			h.start()
			h.room.GoLive()
			waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
			began := time.Now()
			record(6 * time.Second) // the 4 s loop and then some
			h.room.ExpireURLs()
			record(5 * time.Second)
			live := time.Since(began)
			files := h.endAndCollect()
			if len(files) != 1 {
				t.Fatalf("%d files, want one: %s", len(files), describeFiles(files))
			}
			// A reconnect costs a playlist reload or two, not seconds.
			if d := files[0].Duration; d < live-2*time.Second {
				t.Errorf("%s of media after %s live across one reconnect", d, live.Round(time.Millisecond))
			}
		})
	}
}

// A new init segment (a resolution change in a PK) starts a new file.
func TestHLSInitChangeStartsNewFile(t *testing.T) {
	h := hlsHarness(t, mustOffer(t, "fmp4/avc"), nil)
	h.start()
	h.room.GoLive()
	waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
	record(time.Second)
	h.room.ChangeResolution()
	waitCount[recording.FileOpened](t, h.events, 2, 5*time.Second)
	record(time.Second)
	files := h.endAndCollect()
	if len(files) != 2 {
		t.Fatalf("%d files, want 2: %s", len(files), describeFiles(files))
	}
	a, b := videoSize(t, filepath.Join(h.dir, files[0].Path)), videoSize(t, filepath.Join(h.dir, files[1].Path))
	if a == b {
		t.Errorf("both files are %s", a)
	}
}

// A segment that does not match its size|crc is fetched again, and skipped
// when the second copy is bad too; neither bad copy reaches the file.
func TestHLSCorruptSegments(t *testing.T) {
	h := hlsHarness(t, mustOffer(t, "fmp4/avc"), nil)
	h.start()
	h.room.GoLive()
	waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
	record(500 * time.Millisecond)
	h.room.CorruptSegments(1) // the copy fetched again is whole
	waitUntil(t, 5*time.Second, "a refetch", func() bool { return h.mgr.Stats().SegmentsRefetched == 1 })
	h.room.CorruptSegments(2) // both copies are bad
	waitUntil(t, 5*time.Second, "a skip", func() bool { return h.mgr.Stats().SegmentsSkipped == 1 })
	record(500 * time.Millisecond)
	files := h.endAndCollect() // ffprobe: no decoding errors
	if len(files) != 1 {
		t.Errorf("%d files, want 1", len(files))
	}
	if s := h.mgr.Stats(); s.SegmentsRefetched != 2 || s.SegmentsSkipped != 1 {
		t.Errorf("refetched %d, skipped %d; want 2 and 1", s.SegmentsRefetched, s.SegmentsSkipped)
	}
}

// Splits by size and by duration cut MP4 files on keyframes, each file
// playing on its own; danmaku are saved beside an .mp4 as beside an .flv.
func TestMP4SplitsAndDanmaku(t *testing.T) {
	h := hlsHarness(t, mustOffer(t, "fmp4/hevc"), func(o *recording.Options) { o.MaxFileDuration = 3 * time.Second })
	h.start()
	h.room.GoLive()
	waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
	record(300 * time.Millisecond)
	h.room.SendDanmaku(bilibilitest.Danmaku{UID: 1, Uname: "观众", Text: "你好 mp4"})
	record(2 * time.Second)
	files := h.endAndCollect()
	if len(files) < 2 {
		t.Fatalf("%d files, want several of 3 s", len(files))
	}
	for i, f := range files[:len(files)-1] {
		if !strings.HasSuffix(f.Path, ".mp4") || f.Duration < 2*time.Second || f.Duration > 4500*time.Millisecond {
			t.Errorf("file %d: %s %s, want an .mp4 of about 3 s", i, f.Path, f.Duration)
		}
	}
	xml, err := os.ReadFile(filepath.Join(h.dir, files[0].DanmakuPath))
	if err != nil || !strings.Contains(string(xml), "你好 mp4") {
		t.Errorf("danmaku beside %s: %q, %v", files[0].Path, xml, err)
	}

	h2 := hlsHarness(t, mustOffer(t, "fmp4/avc"), func(o *recording.Options) {
		o.Container, o.MaxFileBytes = recording.ContainerMP4, 40<<10
	})
	files = h2.recordBroadcast(2 * time.Second)
	if len(files) < 2 {
		t.Fatalf("%d files, want several of about 40 KiB", len(files))
	}
	for i, f := range files[:len(files)-1] {
		if f.Size < 40<<10 || f.Size > 100<<10 {
			t.Errorf("file %d: %d bytes, want a split soon after 40 KiB", i, f.Size)
		}
	}
}

// Events say which stream a recording is made from: the quality served
// (not the one asked for), its name, format and codec.
func TestEventsSayTheStreamServed(t *testing.T) {
	h := hlsHarness(t, mustOffer(t, "fmp4/hevc"), func(o *recording.Options) { o.Quality = 400 })
	h.start()
	h.room.GoLive()
	opened := waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
	started := ofType[recording.RecordingStarted](h.events)
	want := recording.Stream{Qn: 400, Format: "fmp4", Codec: "hevc"}
	if len(started) != 1 || started[0].Stream != want || started[0].Requested != 400 {
		t.Errorf("RecordingStarted %+v, want %+v", started, want)
	}
	if opened[0].Stream != want || opened[0].Stream.QualityName() != "蓝光" {
		t.Errorf("FileOpened stream %+v (%s), want %+v (蓝光)", opened[0].Stream, opened[0].Stream.QualityName(), want)
	}
	// The alert names it too, and the download reuses the play info the
	// alert fetched rather than asking Bilibili again.
	live := ofType[recording.LiveStarted](h.events)
	if len(live) != 1 || live[0].Stream != want || live[0].Requested != 400 {
		t.Errorf("LiveStarted %+v, want the stream %+v", live, want)
	}
	if n := h.sim.Requests(bilibilitest.PathPlayInfo); n != 1 {
		t.Errorf("%d play info requests to start recording, want 1", n)
	}
}
