package recording_test

import (
	"context"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"roomrec/bilibili"
	"roomrec/bilibili/bilibilitest"
	"roomrec/recording"
)

const pathDanmuInfo = "/xlive/web-room/v1/index/getDanmuInfo"

// record lets the simulated broadcast run for wall time d.
func record(d time.Duration) { time.Sleep(d) }

// endAndCollect ends the broadcast and returns the files it produced, each
// checked with ffprobe.
func (h *harness) endAndCollect() []recording.FileClosed {
	h.t.Helper()
	h.room.EndLive()
	waitCount[recording.LiveEnded](h.t, h.events, 1, 10*time.Second)
	closed := ofType[recording.FileClosed](h.events)
	for i, f := range closed {
		check := probe
		if i == len(closed)-1 && f.Duration < time.Second {
			check = probeTail
		}
		got := check(h.t, filepath.Join(h.dir, f.Path))
		if diff := (got - f.Duration).Abs(); diff > 500*time.Millisecond {
			h.t.Errorf("%s: ffprobe says %s, FileClosed says %s", f.Path, got, f.Duration)
		}
	}
	return closed
}

func TestAlreadyLiveAtStart(t *testing.T) {
	h := newHarness(t, harnessConfig{live: true})
	h.start()
	waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
	record(1500 * time.Millisecond)
	files := h.endAndCollect()

	started := ofType[recording.LiveStarted](h.events)
	if len(started) != 1 {
		t.Fatalf("LiveStarted sent %d times, want 1", len(started))
	}
	s := started[0]
	if !s.AlreadyLiveAtStart || s.Title != "测试直播" || s.Anchor != "主播" || s.Cover == "" || s.LiveStart.IsZero() {
		t.Errorf("LiveStarted = %+v, want already live with title, anchor, cover and start", s)
	}
	if len(files) != 1 {
		t.Fatalf("%d files, want 1: %s", len(files), describe(h.events.all()))
	}
	// 1.5 s of wall time at 4x is about 6 s of media; allow for start-up.
	if files[0].Duration < 3*time.Second {
		t.Errorf("file has %s of media, want at least 3s", files[0].Duration)
	}
	ended := ofType[recording.LiveEnded](h.events)[0]
	if ended.Files != 1 || ended.Bytes != files[0].Size || ended.Bytes == 0 {
		t.Errorf("LiveEnded = %+v, want 1 file of %d bytes", ended, files[0].Size)
	}
	if got := h.files(".flv"); len(got) != 1 {
		t.Errorf("%d .flv files on disk, want 1", len(got))
	}
}

func TestGoLiveTwiceRecordsOnce(t *testing.T) {
	h := newHarness(t, harnessConfig{})
	task := h.start()
	if got := task.Status(); got != recording.Watching {
		t.Errorf("status before live = %s, want watching", got)
	}
	h.room.GoLive() // sends LIVE twice, like Bilibili
	waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
	if got := task.Status(); got != recording.Recording {
		t.Errorf("status while live = %s, want recording", got)
	}
	// A LIVE for the broadcast already being recorded changes nothing.
	h.room.SendRaw([]byte(`{"cmd":"LIVE","roomid":5440}`))
	record(time.Second)
	files := h.endAndCollect()

	if n := len(ofType[recording.LiveStarted](h.events)); n != 1 {
		t.Errorf("LiveStarted sent %d times, want 1", n)
	}
	if n := len(ofType[recording.RecordingStarted](h.events)); n != 1 {
		t.Errorf("RecordingStarted sent %d times, want 1", n)
	}
	if len(files) != 1 {
		t.Errorf("%d files, want 1", len(files))
	}
	waitUntil(t, 5*time.Second, "status back to watching", func() bool { return task.Status() == recording.Watching })
}

func TestCutStreamReconnectsIntoTheSameFile(t *testing.T) {
	h := newHarness(t, harnessConfig{live: true})
	h.start()
	waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
	began := time.Now()
	for range 2 {
		record(700 * time.Millisecond)
		before := h.room.StreamRequests()
		h.room.CutStream()
		waitUntil(t, 3*time.Second, "reconnect", func() bool { return h.room.StreamRequests() > before })
	}
	record(700 * time.Millisecond)
	live := time.Since(began)
	files := h.endAndCollect()
	if len(files) != 1 {
		t.Fatalf("%d files after two cuts, want 1 continuous file: %s", len(files), describe(h.events.all()))
	}
	if files[0].Interrupted {
		t.Errorf("file marked interrupted after a clean end")
	}
	// At 4x, the wall time the room was live (about 2.1 s, more on a busy
	// machine) is four times that in media, plus up to a GOP (about a
	// second) the CDN sends from before the live position at the start.
	// Each reconnect gets such a GOP again, which the repair must drop:
	// duplicates would add about a second per cut. A slow reconnect loses
	// what the stream sent meanwhile, so the floor is lower.
	want := 4 * live
	if d := files[0].Duration; d < 4*time.Second || d > want+1800*time.Millisecond {
		t.Errorf("file has %s of media, want about %s (%s live at 4x)", d, want.Round(100*time.Millisecond), live.Round(10*time.Millisecond))
	}
}

func TestStreamNotFoundAtStart(t *testing.T) {
	h := newHarness(t, harnessConfig{})
	h.start()
	h.room.StreamNotFoundFor(time.Second)
	h.room.GoLive()
	waitCount[recording.RecordingStarted](t, h.events, 1, 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	if n := len(ofType[recording.FileOpened](h.events)); n != 0 {
		t.Errorf("%d files opened while the stream answered 404, want none (no empty files)", n)
	}
	waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
	if n := h.room.StreamRequests(); n < 2 {
		t.Errorf("%d stream requests, want retries while it answered 404", n)
	}
	record(time.Second)
	if files := h.endAndCollect(); len(files) != 1 {
		t.Errorf("%d files, want 1", len(files))
	}
	if errs := ofType[recording.TaskError](h.events); len(errs) != 0 {
		t.Errorf("TaskErrors %+v for a second of 404s, which CDNs give at every start", errs)
	}
}

// A stream that cannot be read for longer than StreamFailGrace while the
// room is live is reported once, and its recovery too.
func TestStreamFailingForLongIsReported(t *testing.T) {
	h := newHarness(t, harnessConfig{opts: func(o *recording.Options) { o.StreamFailGrace = 500 * time.Millisecond }})
	h.start()
	h.room.StreamNotFoundFor(2 * time.Second)
	h.room.GoLive()
	errs := waitCount[recording.TaskError](t, h.events, 1, 5*time.Second)
	if errs[0].Kind != recording.ErrorNetwork || !errs[0].Recoverable || !strings.Contains(errs[0].Err.Error(), "404") {
		t.Errorf("TaskError = %+v, want a recoverable network error naming the 404", errs[0])
	}
	waitCount[recording.TaskRecovered](t, h.events, 1, 5*time.Second)
	waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
	record(500 * time.Millisecond)
	h.endAndCollect()
	if n := len(ofType[recording.TaskError](h.events)); n != 1 {
		t.Errorf("%d TaskErrors for one outage, want 1", n)
	}
}

// A stream problem belongs to its broadcast: one that ends while the stream
// is still failing ends the condition too, and the next broadcast with the
// same trouble is reported again.
func TestStreamProblemIsReportedPerBroadcast(t *testing.T) {
	h := newHarness(t, harnessConfig{opts: func(o *recording.Options) {
		o.StreamFailGrace, o.EndGrace = 300*time.Millisecond, 300*time.Millisecond
	}})
	h.start()
	for i := 1; i <= 2; i++ {
		h.room.StreamNotFoundFor(time.Hour)
		h.room.GoLive()
		waitCount[recording.TaskError](t, h.events, i, 5*time.Second)
		h.room.EndLive()
		waitCount[recording.LiveEnded](t, h.events, i, 5*time.Second)
		waitCount[recording.TaskRecovered](t, h.events, i, 5*time.Second)
	}
	for _, e := range ofType[recording.TaskError](h.events) {
		if e.Kind != recording.ErrorNetwork {
			t.Errorf("TaskError %+v, want network", e)
		}
	}
}

// A task that stops ends the conditions it reported, so whoever counts them
// (the notifier, for the disk and risk control) is not left waiting for a
// recovery that will never be seen.
func TestStoppedTaskEndsItsConditions(t *testing.T) {
	h := newHarness(t, harnessConfig{})
	h.sim.RiskControl("", 100000)
	if _, err := h.mgr.AcquireRoom(recording.Room{RoomID: testRoom}, true); err != nil {
		t.Fatal(err)
	}
	waitCount[recording.TaskError](t, h.events, 1, 5*time.Second)
	if err := h.mgr.Release(testRoom, true); err != nil {
		t.Fatal(err)
	}
	got := waitCount[recording.TaskRecovered](t, h.events, 1, 5*time.Second)
	if got[0].Kind != recording.ErrorRiskControl {
		t.Errorf("TaskRecovered = %+v, want risk control ended with the task", got[0])
	}
}

// Release does not wait for the task to finish its files (a chat's /stop is
// answered at once); Shutdown does, so nothing is left half-written.
func TestReleasedTaskFinishesBeforeShutdownReturns(t *testing.T) {
	h := newHarness(t, harnessConfig{live: true})
	h.start()
	waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
	record(500 * time.Millisecond)
	if err := h.mgr.Release(testRoom, true); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.mgr.Get(testRoom); ok {
		t.Error("the released room still has a task")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.mgr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if files := h.files(".flv"); len(files) != 1 { // also fails on a .part left
		t.Errorf("%d finished files after Shutdown, want the released task's one", len(files))
	}
	if n := len(ofType[recording.FileClosed](h.events)); n != 1 {
		t.Errorf("%d FileClosed events by the end of Shutdown, want 1", n)
	}
}

// A room offered only in kinds the configuration leaves out (here: HLS,
// with ROOMREC_STREAM_ORDER naming FLV alone) is reported once, retried
// without spinning, and recorded as soon as an allowed stream appears.
func TestHLSOnlyRoomIsReportedThenRecordedWhenFLVAppears(t *testing.T) {
	h := newHarness(t, harnessConfig{opts: func(o *recording.Options) {
		o.StreamOrder = []bilibili.StreamKind{{Format: "flv", Codec: "avc"}}
	}})
	h.start()
	h.room.OfferOnlyHLS(true)
	h.room.GoLive()
	errs := waitCount[recording.TaskError](t, h.events, 1, 5*time.Second)
	if errs[0].Kind != recording.ErrorNoStream || !errs[0].Recoverable || !strings.Contains(errs[0].Err.Error(), "http_hls/fmp4") {
		t.Errorf("TaskError = %+v, want a recoverable no_stream naming the HLS formats", errs[0])
	}
	playInfo := bilibilitest.PathPlayInfo
	asked := h.sim.Requests(playInfo)
	record(time.Second)
	if n := h.sim.Requests(playInfo) - asked; n > 15 {
		t.Errorf("%d play info requests in a second; the retry is spinning", n)
	}
	if n := len(ofType[recording.FileOpened](h.events)); n != 0 {
		t.Errorf("%d files opened with no FLV stream", n)
	}
	h.room.OfferOnlyHLS(false)
	waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
	record(time.Second)
	if files := h.endAndCollect(); len(files) != 1 {
		t.Errorf("%d files, want 1", len(files))
	}
	if n := len(ofType[recording.TaskError](h.events)); n != 1 {
		t.Errorf("%d TaskErrors, want the one no_stream report", n)
	}
	if n := len(ofType[recording.TaskRecovered](h.events)); n != 1 {
		t.Errorf("%d TaskRecovered, want 1 once FLV came", n)
	}
}

func TestStalledStreamReconnects(t *testing.T) {
	h := newHarness(t, harnessConfig{live: true, opts: func(o *recording.Options) { o.StallTimeout = 500 * time.Millisecond }})
	h.start()
	waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
	record(500 * time.Millisecond)
	before := h.room.StreamRequests()
	h.room.StallStream(5 * time.Second)
	waitUntil(t, 3*time.Second, "reconnect after a stall", func() bool { return h.room.StreamRequests() > before })
	record(time.Second)
	if files := h.endAndCollect(); len(files) != 1 {
		t.Errorf("%d files, want 1", len(files))
	}
}

func TestResolutionChangeStartsNewFile(t *testing.T) {
	h := newHarness(t, harnessConfig{live: true})
	h.start()
	waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
	record(time.Second)
	h.room.ChangeResolution()
	waitCount[recording.FileOpened](t, h.events, 2, 5*time.Second)
	record(time.Second)
	files := h.endAndCollect()
	if len(files) != 2 {
		t.Fatalf("%d files, want 2 (split at the new sequence header)", len(files))
	}
	if files[0].Part != 1 || files[1].Part != 2 {
		t.Errorf("parts = %d, %d, want 1, 2", files[0].Part, files[1].Part)
	}
	for i, want := range []string{"320x180", "480x270"} {
		if got := videoSize(t, filepath.Join(h.dir, files[i].Path)); got != want {
			t.Errorf("file %d is %s, want %s", i+1, got, want)
		}
	}
}

func TestTimestampJumpIsRebased(t *testing.T) {
	h := newHarness(t, harnessConfig{live: true})
	h.start()
	waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
	record(time.Second)
	h.room.JumpTimestamps(30 * time.Second)
	record(time.Second)
	files := h.endAndCollect()
	if len(files) != 1 {
		t.Fatalf("%d files, want 1", len(files))
	}
	if d := files[0].Duration; d > 15*time.Second {
		t.Errorf("file has %s of media after a 30 s jump in 2 s of recording; the jump was not rebased", d)
	}
}

func TestSizeSplitOnKeyframes(t *testing.T) {
	h := newHarness(t, harnessConfig{live: true, speed: 8, opts: func(o *recording.Options) { o.MaxFileBytes = 80 << 10 }})
	h.start()
	waitCount[recording.FileOpened](t, h.events, 3, 10*time.Second)
	files := h.endAndCollect()
	if len(files) < 3 {
		t.Fatalf("%d files, want at least 3 with an 80 KiB limit", len(files))
	}
	for _, f := range files[:len(files)-1] {
		// A split waits for the next keyframe: at most one GOP (~30 KiB
		// here) past the limit.
		if f.Size < 60<<10 || f.Size > 160<<10 {
			t.Errorf("%s is %d bytes, want about 80 KiB", f.Path, f.Size)
		}
	}
}

func TestPreparingBeforeStreamCloses(t *testing.T) {
	h := newHarness(t, harnessConfig{live: true})
	h.start()
	waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
	record(time.Second)
	ended := time.Now()
	files := h.endAndCollect() // EndLive sends PREPARING, then closes the stream
	if took := time.Since(ended); took > 1500*time.Millisecond {
		t.Errorf("LiveEnded came %s after PREPARING, want promptly", took)
	}
	if len(files) != 1 || files[0].Interrupted {
		t.Errorf("files = %+v, want 1 complete file", files)
	}
}

func TestStreamClosesBeforePreparing(t *testing.T) {
	h := newHarness(t, harnessConfig{live: true})
	h.start()
	waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
	record(time.Second)
	h.room.EndLiveStreamFirst(700 * time.Millisecond)
	waitCount[recording.LiveEnded](t, h.events, 1, 10*time.Second)
	files := ofType[recording.FileClosed](h.events)
	if len(files) != 1 {
		t.Fatalf("%d files, want 1", len(files))
	}
	probe(t, filepath.Join(h.dir, files[0].Path))
	if n := len(ofType[recording.LiveEnded](h.events)); n != 1 {
		t.Errorf("LiveEnded sent %d times, want 1", n)
	}
}

func TestDanmakuRejectedStillRecordsThroughPoll(t *testing.T) {
	h := newHarness(t, harnessConfig{opts: func(o *recording.Options) { o.PollInterval = time.Second }})
	h.sim.RiskControl(pathDanmuInfo, 1000)
	if _, err := h.mgr.Acquire(context.Background(), testRoom, true); err != nil {
		t.Fatal(err)
	}
	h.room.GoLive()
	waitCount[recording.FileOpened](t, h.events, 1, 8*time.Second)
	if n := h.sim.DanmakuConnections(testRoom); n != 0 {
		t.Errorf("%d danmaku connections despite -352, want 0", n)
	}
	record(500 * time.Millisecond)
	h.endAndCollect()
	errs := ofType[recording.TaskError](h.events)
	if len(errs) != 1 || errs[0].Kind != recording.ErrorRiskControl || !errs[0].Recoverable {
		t.Errorf("TaskErrors = %+v, want one recoverable risk_control", errs)
	}
	if got := h.sim.Requests(pathDanmuInfo); got > 20 {
		t.Errorf("getDanmuInfo asked %d times in a few seconds of -352; the backoff is not working", got)
	}
}

func TestTitleWithSlashStaysInRoomDir(t *testing.T) {
	h := newHarness(t, harnessConfig{live: true, title: "PK/决赛 ../../etc/passwd"})
	h.start()
	waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
	record(500 * time.Millisecond)
	files := h.endAndCollect()
	if len(files) != 1 {
		t.Fatalf("%d files, want 1", len(files))
	}
	p := files[0].Path
	if filepath.Dir(p) != "5440" || strings.Contains(filepath.Base(p), "/") {
		t.Errorf("file path %q is not directly in the room's directory", p)
	}
	if !strings.Contains(p, "PK_决赛") {
		t.Errorf("file path %q does not carry the sanitized title", p)
	}
}

// Danmaku are placed at the picture they were sent over, also after a
// stream outage whose gap the repair squeezes out of the file: placed by
// wall time they would land seconds after the video's end.
func TestDanmakuStayWithThePictureAcrossAnOutage(t *testing.T) {
	h := newHarness(t, harnessConfig{live: true, speed: 1})
	h.start()
	waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
	record(time.Second)
	// The CDN drops the stream and answers 404 for 3 s; the reconnect
	// starts at the live position, and the repair squeezes the gap out.
	h.room.StreamNotFoundFor(3 * time.Second)
	h.room.CutStream()
	record(3500 * time.Millisecond)
	h.room.SendDanmaku(bilibilitest.Danmaku{UID: 1, Uname: "观众", Text: "回来了"})
	record(time.Second)
	files := h.endAndCollect()
	if len(files) != 1 || files[0].DanmakuPath == "" {
		t.Fatalf("files = %+v, want one with danmaku", files)
	}
	raw, err := os.ReadFile(filepath.Join(h.dir, files[0].DanmakuPath))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		D []struct {
			P string `xml:"p,attr"`
		} `xml:"d"`
	}
	if err := xml.Unmarshal(raw, &doc); err != nil || len(doc.D) != 1 {
		t.Fatalf("danmaku file = %s (%v), want one danmaku", raw, err)
	}
	at, _ := strconv.ParseFloat(strings.Split(doc.D[0].P, ",")[0], 64)
	// Sent about a second before the broadcast ended. By wall time it
	// would sit 3 s later, past the end of the picture.
	end := files[0].Duration.Seconds()
	if at > end-0.3 || at < end-2 {
		t.Errorf("danmaku at %.3f s in a file of %.3f s, want about a second before its end", at, end)
	}
}

func TestDanmakuSavedBesideVideo(t *testing.T) {
	h := newHarness(t, harnessConfig{live: true})
	h.start()
	waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
	h.room.SendDanmaku(bilibilitest.Danmaku{UID: 42, Uname: "观众<1>", Text: "前排 & <b>", Color: 16777215, Mode: 1, FontSize: 25})
	h.room.SendSuperChat(bilibilitest.SuperChat{UID: 43, Uname: "老板", Message: "加油", Price: 30, Duration: time.Minute})
	h.room.SendGift(bilibilitest.Gift{UID: 44, Uname: "粉丝", GiftName: "辣条", Num: 5, Price: 100, CoinType: "silver"})
	h.room.SendGuard(bilibilitest.Guard{UID: 45, Uname: "舰长", Level: 3, Num: 1, Price: 198000})
	record(700 * time.Millisecond)
	files := h.endAndCollect()
	if len(files) != 1 || files[0].DanmakuPath == "" {
		t.Fatalf("files = %+v, want one with a danmaku file", files)
	}
	raw, err := os.ReadFile(filepath.Join(h.dir, files[0].DanmakuPath))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		XMLName xml.Name `xml:"i"`
		D       []struct {
			P    string `xml:"p,attr"`
			User string `xml:"user,attr"`
			Text string `xml:",chardata"`
		} `xml:"d"`
		SC []struct {
			Text string `xml:",chardata"`
		} `xml:"sc"`
		Gift []struct {
			Name string `xml:"giftname,attr"`
		} `xml:"gift"`
		Guard []struct {
			Level string `xml:"level,attr"`
		} `xml:"guard"`
	}
	if err := xml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("danmaku file is not valid XML: %v\n%s", err, raw)
	}
	if len(doc.D) != 1 || doc.D[0].Text != "前排 & <b>" || doc.D[0].User != "观众<1>" {
		t.Fatalf("danmaku = %+v, want the one sent", doc.D)
	}
	p := strings.Split(doc.D[0].P, ",")
	if len(p) != 8 || p[1] != "1" || p[2] != "25" || p[3] != "16777215" || p[6] != "42" {
		t.Errorf("p = %q, want seconds,mode,size,colour,send_ms,0,uid,0", doc.D[0].P)
	}
	if len(doc.SC) != 1 || doc.SC[0].Text != "加油" || len(doc.Gift) != 1 || doc.Gift[0].Name != "辣条" || len(doc.Guard) != 1 || doc.Guard[0].Level != "3" {
		t.Errorf("sc, gift, guard = %+v %+v %+v, want one of each", doc.SC, doc.Gift, doc.Guard)
	}
	covers, _ := filepath.Glob(filepath.Join(h.dir, "5440", "*.jpg"))
	if len(covers) != 1 {
		t.Errorf("%d cover images, want 1 beside the first file", len(covers))
	}
}

func TestShutdownFinishesFiles(t *testing.T) {
	h := newHarness(t, harnessConfig{live: true})
	h.start()
	waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
	record(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.mgr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	files := ofType[recording.FileClosed](h.events)
	if len(files) != 1 {
		t.Fatalf("%d files closed at shutdown, want 1", len(files))
	}
	probe(t, filepath.Join(h.dir, files[0].Path))
	if got := h.files(".flv"); len(got) != 1 {
		t.Errorf("%d finished .flv files, want 1", len(got))
	}
}

func TestManagerSharesOneTaskPerRoom(t *testing.T) {
	h := newHarness(t, harnessConfig{})
	ctx := context.Background()
	a, err := h.mgr.Acquire(ctx, 1, false) // the short id
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.mgr.Acquire(ctx, testRoom, true)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatal("short and real id got different tasks")
	}
	if err := a.Start(ctx); !errors.Is(err, recording.ErrTaskStarted) {
		t.Errorf("second Start = %v, want ErrTaskStarted", err)
	}
	if got := len(h.mgr.List()); got != 1 {
		t.Errorf("List has %d tasks, want 1", got)
	}
	if err := h.mgr.Release(testRoom, true); err != nil {
		t.Fatal(err)
	}
	if a.Status() == recording.Stopped {
		t.Error("task stopped while a watch reference remains")
	}
	if info := a.Info(); info.Record {
		t.Error("task still records after the only record reference was released")
	}
	if err := h.mgr.Release(testRoom, false); err != nil {
		t.Fatal(err)
	}
	<-a.Done()
	if a.Status() != recording.Stopped {
		t.Errorf("status after last release = %s, want stopped", a.Status())
	}
	if err := a.Start(ctx); !errors.Is(err, recording.ErrTaskStopped) {
		t.Errorf("Start after stop = %v, want ErrTaskStopped", err)
	}
	if err := h.mgr.Release(testRoom, false); !errors.Is(err, recording.ErrNotWatched) {
		t.Errorf("Release of an unwatched room = %v, want ErrNotWatched", err)
	}
	if _, err := h.mgr.Acquire(ctx, 999999, true); err == nil {
		t.Error("Acquire of an unknown room succeeded")
	}
}

func TestRoomGoneStopsTaskWithError(t *testing.T) {
	h := newHarness(t, harnessConfig{opts: func(o *recording.Options) { o.PollInterval = 300 * time.Millisecond }})
	task := h.start()
	h.sim.RemoveRoom(testRoom)
	select {
	case <-task.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("task still running after Bilibili forgot the room")
	}
	// Events are delivered on their own goroutine, so the error may land
	// just after the task ends.
	waitCount[recording.TaskError](t, h.events, 1, 5*time.Second)
	time.Sleep(100 * time.Millisecond) // room for a second one, which must not come
	errs := ofType[recording.TaskError](h.events)
	if len(errs) != 1 || errs[0].Kind != recording.ErrorRoomGone || errs[0].Recoverable {
		t.Errorf("TaskErrors = %+v, want one unrecoverable room_gone", errs)
	}
	if task.Status() != recording.Stopped || task.Err() == nil {
		t.Errorf("status %s, err %v; want stopped with the error kept", task.Status(), task.Err())
	}
}

func TestTitleChangeIsReported(t *testing.T) {
	h := newHarness(t, harnessConfig{live: true, opts: func(o *recording.Options) { o.MaxFileDuration = 8 * time.Second }})
	h.start()
	waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
	h.room.SetTitle("新标题")
	changed := waitCount[recording.TitleChanged](t, h.events, 1, 5*time.Second)
	if changed[0].Old != "测试直播" || changed[0].New != "新标题" {
		t.Errorf("TitleChanged = %+v", changed[0])
	}
	// The next file (a duration split) carries the new title.
	opened := waitCount[recording.FileOpened](t, h.events, 2, 5*time.Second)
	if !strings.Contains(opened[1].Path, "新标题") || opened[1].Title != "新标题" {
		t.Errorf("second file %+v does not carry the new title", opened[1])
	}
	h.endAndCollect()
}

func TestDeadCDNHostIsSkipped(t *testing.T) {
	h := newHarness(t, harnessConfig{live: true})
	h.sim.SetPlayHosts("http://127.0.0.1:1", h.sim.URL())
	h.start()
	waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
	record(500 * time.Millisecond)
	if files := h.endAndCollect(); len(files) != 1 {
		t.Errorf("%d files, want 1 from the second host", len(files))
	}
}

func TestPushLostWhileDisconnectedIsCaughtOnReconnect(t *testing.T) {
	// With the poll an hour away, only the poll made right after the
	// websocket reconnects can notice a LIVE sent while it was down.
	h := newHarness(t, harnessConfig{opts: func(o *recording.Options) { o.PollInterval = time.Hour }})
	h.start()
	h.sim.RiskControl(pathDanmuInfo, 3) // keep it down for a few retries
	h.sim.DropDanmakuConnections()
	waitUntil(t, 2*time.Second, "disconnect", func() bool { return h.sim.DanmakuConnections(testRoom) == 0 })
	h.room.GoLive() // nobody hears this LIVE
	waitCount[recording.FileOpened](t, h.events, 1, 10*time.Second)
	record(300 * time.Millisecond)
	h.endAndCollect()
}
