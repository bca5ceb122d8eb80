package bilibilitest

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"roomrec/recording/flv"
)

// trackState checks, per track, that timestamps never go back.
type trackState struct {
	last map[flv.TagType]int64
}

func (ts *trackState) check(t *testing.T, tag *flv.Tag) {
	t.Helper()
	if ts.last == nil {
		ts.last = map[flv.TagType]int64{}
	}
	if last, ok := ts.last[tag.Type]; ok && tag.Timestamp < last {
		t.Fatalf("%s timestamp %d after %d, want monotonic", tag.Type, tag.Timestamp, last)
	}
	ts.last[tag.Type] = tag.Timestamp
}

func TestStreamStartsLikeACDN(t *testing.T) {
	s := Start(t, Config{Speed: 10})
	s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
	fs := mustStream(t, s, 5440)

	script, avc, aac := fs.mustNext(t), fs.mustNext(t), fs.mustNext(t)
	if script.Type != flv.TagScript || !bytes.Contains(script.Data, []byte("onMetaData")) {
		t.Errorf("first tag %s, want onMetaData", script.Type)
	}
	if avc.Type != flv.TagVideo || !avc.IsSequenceHeader() {
		t.Errorf("second tag %s (sequence header %v), want the AVC sequence header", avc.Type, avc.IsSequenceHeader())
	}
	if aac.Type != flv.TagAudio || !aac.IsSequenceHeader() {
		t.Errorf("third tag %s (sequence header %v), want the AAC sequence header", aac.Type, aac.IsSequenceHeader())
	}
	var tracks trackState
	var first *flv.Tag
	sawVideo := false
	for range 200 {
		tag := fs.mustNext(t)
		if tag.IsSequenceHeader() {
			t.Fatalf("another sequence header at %d, want none without a resolution change", tag.Timestamp)
		}
		if first == nil {
			first = tag
			if tag.Timestamp == 0 {
				t.Errorf("first media timestamp 0, want the broadcast's running time")
			}
		}
		if tag.Type == flv.TagVideo && !sawVideo {
			sawVideo = true
			if !tag.IsKeyframe() {
				t.Errorf("first video frame is not a keyframe")
			}
		}
		tracks.check(t, tag)
	}
}

func TestStreamStartsAtLivePosition(t *testing.T) {
	// Two connections a little apart both start at a keyframe at or before
	// the live position, so the later one never starts earlier.
	s := Start(t, Config{Speed: 10})
	s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
	firstMedia := func() int64 {
		fs := mustStream(t, s, 5440)
		for range 3 {
			fs.mustNext(t)
		}
		ts := fs.mustNext(t).Timestamp
		fs.resp.Body.Close()
		return ts
	}
	a := firstMedia()
	time.Sleep(300 * time.Millisecond) // 3 s of stream at Speed 10
	b := firstMedia()
	if b < a+2000 || b > a+8000 {
		t.Errorf("second connection starts at %d, first at %d; want about 3 s later, at a keyframe", b, a)
	}
}

// What the simulator has written goes out before it waits, as a CDN's
// does: net/http holds small writes in its buffer until more come, which
// once delivered the start of a stream a second late and in a burst
// (recordings then held seconds more media than the time they ran). A
// stalled stream shows it without timing luck: the headers and codec
// configuration are written before the stall and must arrive during it.
func TestStreamWritesReachTheClientBeforeAWait(t *testing.T) {
	s := Start(t, Config{Speed: 4})
	room := s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
	room.StallStream(5 * time.Second)
	// A client that gives up long before the stall ends.
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(streamURL(t, s, 5440))
	if err != nil {
		t.Fatalf("stream response held back while it stalled: %v", err)
	}
	defer resp.Body.Close()
	r := flv.NewReader(resp.Body)
	if _, err := r.ReadHeader(); err != nil {
		t.Fatalf("FLV header held back while the stream stalled: %v", err)
	}
	for range 3 { // onMetaData and both sequence headers
		if _, err := r.ReadTag(); err != nil {
			t.Fatalf("codec configuration held back while the stream stalled: %v", err)
		}
	}
}

func TestStreamNotAvailable(t *testing.T) {
	s := Start(t, Config{Speed: 10})
	room := s.AddRoom(RoomConfig{RoomID: 5440})
	room.GoLive()
	u := streamURL(t, s, 5440)

	room.StreamNotFoundFor(300 * time.Millisecond)
	if resp := openStream(t, u); resp.StatusCode != http.StatusNotFound {
		t.Errorf("during StreamNotFoundFor: status %d, want 404", resp.StatusCode)
	}
	time.Sleep(350 * time.Millisecond)
	if resp := openStream(t, u); resp.StatusCode != http.StatusOK {
		t.Errorf("after StreamNotFoundFor: status %d, want 200", resp.StatusCode)
	}
	room.EndLive()
	if resp := openStream(t, u); resp.StatusCode != http.StatusNotFound {
		t.Errorf("offline: status %d, want 404", resp.StatusCode)
	}
	if got := room.StreamRequests(); got != 3 {
		t.Errorf("StreamRequests = %d, want 3 (404s included)", got)
	}
}

func TestWaitStreamRequest(t *testing.T) {
	s := Start(t, Config{Speed: 10})
	room := s.AddRoom(RoomConfig{RoomID: 5440})
	room.GoLive()
	u := streamURL(t, s, 5440)
	room.StreamNotFoundFor(time.Minute)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := room.WaitStreamRequest(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("with no request: err %v, want the context's deadline", err)
	}
	before := time.Now()
	go func() {
		time.Sleep(20 * time.Millisecond)
		http.Get(u)
		http.Get(u)
	}()
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	at, err := room.WaitStreamRequest(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if at.Before(before) || time.Since(at) > 5*time.Second {
		t.Errorf("second request at %v, want after %v", at, before)
	}
	if first, _ := room.WaitStreamRequest(ctx, 1); !first.Before(at) && !first.Equal(at) {
		t.Errorf("first request at %v after the second at %v", first, at)
	}
}

func TestStreamEnds(t *testing.T) {
	tests := []struct {
		name      string
		act       func(*Room)
		wantClean bool // a clean end of body (io.EOF at a tag boundary)
		stillLive bool
	}{
		{"CutStream breaks it", (*Room).CutStream, false, true},
		{"EndLive ends it", (*Room).EndLive, true, false},
		{"EndLiveStreamFirst ends it", func(r *Room) { r.EndLiveStreamFirst(time.Minute) }, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Start(t, Config{Speed: 4})
			room := s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
			fs := mustStream(t, s, 5440)
			for range 10 {
				fs.mustNext(t)
			}
			if n := room.OpenStreams(); n != 1 {
				t.Errorf("OpenStreams = %d, want 1", n)
			}
			tt.act(room)
			err := fs.readErr(t, 2*time.Second)
			if clean := err == io.EOF; clean != tt.wantClean {
				t.Errorf("stream ended with %v, want a clean end %v", err, tt.wantClean)
			}
			waitFor(t, time.Second, "stream handler gone", func() bool { return room.OpenStreams() == 0 })
			var init struct {
				LiveStatus int `json:"live_status"`
			}
			getData(t, s.URL()+PathRoomInit+"?id=5440", &init)
			if (init.LiveStatus == 1) != tt.stillLive {
				t.Errorf("live_status %d after, want live %v", init.LiveStatus, tt.stillLive)
			}
		})
	}
}

func TestEndLiveStreamFirstRefusesStreamsUntilPreparing(t *testing.T) {
	s := Start(t, Config{Speed: 10})
	room := s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
	u := streamURL(t, s, 5440)
	room.EndLiveStreamFirst(200 * time.Millisecond)
	if resp := openStream(t, u); resp.StatusCode != http.StatusNotFound {
		t.Errorf("stream after the encoder stopped: status %d, want 404", resp.StatusCode)
	}
	waitFor(t, 2*time.Second, "offline after the gap", func() bool { return room.LiveKey() == "" })
}

func TestStallStream(t *testing.T) {
	s := Start(t, Config{Speed: 10})
	room := s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
	fs := mustStream(t, s, 5440)
	for range 5 {
		fs.mustNext(t)
	}
	// Drain what was sent before the stall; then nothing may arrive.
	room.StallStream(600 * time.Millisecond)
	stalled := time.Now()
	var gapStart time.Time
	var longest time.Duration
	for time.Since(stalled) < 900*time.Millisecond {
		fs.mustNext(t)
		now := time.Now()
		if !gapStart.IsZero() {
			longest = max(longest, now.Sub(gapStart))
		}
		gapStart = now
	}
	if longest < 400*time.Millisecond {
		t.Errorf("longest gap between tags %s, want a stall of about 600ms", longest)
	}
	if n := room.OpenStreams(); n != 1 {
		t.Errorf("OpenStreams = %d after a stall, want the connection kept", n)
	}
}

func TestChangeResolution(t *testing.T) {
	s := Start(t, Config{Speed: 10})
	room := s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
	fs := mustStream(t, s, 5440)
	fs.mustNext(t)
	firstAVC := fs.mustNext(t)
	fs.mustNext(t) // AAC: both samples share the audio configuration
	var tracks trackState
	for range 20 {
		tracks.check(t, fs.mustNext(t))
	}
	room.ChangeResolution()
	var newAVC, newAAC *flv.Tag
	for newAVC == nil || newAAC == nil {
		tag := fs.mustNext(t)
		tracks.check(t, tag)
		switch {
		case tag.IsSequenceHeader() && tag.Type == flv.TagVideo:
			newAVC = tag
		case tag.IsSequenceHeader() && tag.Type == flv.TagAudio:
			newAAC = tag
		}
	}
	if bytes.Equal(newAVC.Data, firstAVC.Data) {
		t.Errorf("new AVC sequence header equals the first, want the other resolution's")
	}
	if newAAC.Timestamp == 0 || newAVC.Timestamp == 0 {
		t.Errorf("mid-stream sequence headers at %d and %d, want the running time", newAVC.Timestamp, newAAC.Timestamp)
	}
	for {
		tag := fs.mustNext(t)
		tracks.check(t, tag)
		if tag.Type == flv.TagVideo {
			if !tag.IsKeyframe() {
				t.Errorf("first video frame after the switch is not a keyframe")
			}
			break
		}
	}
	// A connection opened now starts with the new sample's header.
	fs2 := mustStream(t, s, 5440)
	fs2.mustNext(t)
	if avc := fs2.mustNext(t); !bytes.Equal(avc.Data, newAVC.Data) {
		t.Errorf("a new connection's AVC header is not the switched-to one")
	}
}

func TestJumpTimestamps(t *testing.T) {
	s := Start(t, Config{Speed: 10})
	room := s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
	fs := mustStream(t, s, 5440)
	for range 3 {
		fs.mustNext(t)
	}
	var lastVideo int64
	for range 30 {
		if tag := fs.mustNext(t); tag.Type == flv.TagVideo {
			lastVideo = tag.Timestamp
		}
	}
	room.JumpTimestamps(time.Minute)
	for {
		tag := fs.mustNext(t)
		if tag.Type != flv.TagVideo {
			continue
		}
		d := tag.Timestamp - lastVideo
		if d > 1000 && (d < 60_000 || d > 61_000) {
			t.Fatalf("video jumped by %d ms, want about 60000", d)
		}
		if d >= 60_000 {
			return
		}
		lastVideo = tag.Timestamp
	}
}

// TestStreamDecodes pipes ~3 s of a stream at Speed 10 (several loops of
// the sample) into a file and has ffprobe decode it.
func TestStreamDecodes(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Skip("ffprobe not installed")
	}
	s := Start(t, Config{Speed: 10})
	s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
	resp := openStream(t, streamURL(t, s, 5440))
	path := filepath.Join(t.TempDir(), "live.flv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(3 * time.Second)
		resp.Body.Close()
	}()
	io.Copy(f, resp.Body)
	f.Close()

	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "packet=stream_index,pts_time,dts_time", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	rows, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	// The video has B-frames, so its pts are reordered in decode order:
	// per stream, dts must rise and no pts may come twice (a loop that went
	// back would repeat them).
	count := map[string]int{}
	lastDTS := map[string]float64{}
	type streamPTS struct {
		stream string
		pts    float64
	}
	seenPTS := map[streamPTS]bool{}
	first, last := -1.0, 0.0
	for _, row := range rows {
		if len(row) != 3 {
			t.Fatalf("ffprobe row %q, want stream,pts,dts", row)
		}
		stream := row[0]
		pts, err1 := strconv.ParseFloat(row[1], 64)
		dts, err2 := strconv.ParseFloat(row[2], 64)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatalf("ffprobe row %q: %v", row, err)
		}
		if prev, ok := lastDTS[stream]; ok && dts <= prev {
			t.Fatalf("stream %s dts %.3f after %.3f, want increasing", stream, dts, prev)
		}
		if seenPTS[streamPTS{stream, pts}] {
			t.Fatalf("stream %s pts %.3f twice, want a stream that never repeats", stream, pts)
		}
		seenPTS[streamPTS{stream, pts}] = true
		lastDTS[stream] = dts
		count[stream]++
		if first < 0 {
			first = dts
		}
		last = max(last, dts)
	}
	if count["0"] < 300 || count["1"] < 400 {
		t.Errorf("%d video and %d audio packets, want about 30 s of each", count["0"], count["1"])
	}
	if span := last - first; span < 20 || span > 40 {
		t.Errorf("dts span %.1f s, want about 30 s (3 s at Speed 10)", span)
	}
}

func TestStreamWithFillerDecodes(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Skip("ffprobe not installed")
	}
	s := Start(t, Config{Speed: 10, VideoFiller: 30000})
	s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
	resp := openStream(t, streamURL(t, s, 5440))
	path := filepath.Join(t.TempDir(), "live.flv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(f, io.LimitReader(resp.Body, 3<<20))
	resp.Body.Close()
	f.Close()
	var stderr strings.Builder
	cmd := exec.Command("ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=size", "-of", "csv=p=0", path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || strings.Contains(stderr.String(), "NAL") {
		t.Fatalf("ffprobe: %v\n%s", err, stderr.String())
	}
	sizes := strings.Fields(string(out))
	if len(sizes) < 50 {
		t.Fatalf("%d video packets, want a stream", len(sizes))
	}
	for _, sz := range sizes[:len(sizes)-1] {
		if n, _ := strconv.Atoi(sz); n < 30000 {
			t.Fatalf("video packet of %d bytes, want the 30000 bytes of filler added", n)
		}
	}
}

// waitFor polls cond until it holds or fails the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReconnectOnSameConnectionAfterEnd(t *testing.T) {
	// A client that reuses its keep-alive connection for the next broadcast
	// must get a stream that lasts, not one cut by the last one's ending.
	s := Start(t, Config{Speed: 10})
	room := s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	get := func() *http.Response {
		resp, err := client.Get(streamURL(t, s, 5440))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	first := get()
	time.Sleep(50 * time.Millisecond)
	room.EndLive()
	if _, err := io.Copy(io.Discard, first.Body); err != nil {
		t.Fatalf("first stream ended with %v, want a clean end", err)
	}
	room.GoLive()
	second := get()
	fs := &flvStream{resp: second, r: flv.NewReader(second.Body)}
	if _, err := fs.r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	// The first stream's stop gave its connection a 1 s write deadline.
	start := time.Now()
	for time.Since(start) < 1200*time.Millisecond {
		if _, err := fs.next(); err != nil {
			t.Fatalf("second stream broke after %s: %v", time.Since(start), err)
		}
	}
}

func TestStopUnblocksAStuckWrite(t *testing.T) {
	// A client that stops reading leaves the handler blocked in a write
	// once the socket buffers fill; CutStream and EndLive must still free
	// it promptly.
	tests := []struct {
		name string
		stop func(*Room)
	}{
		{"CutStream", (*Room).CutStream},
		{"EndLive", (*Room).EndLive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Start(t, Config{Speed: 400})
			room := s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
			// The receive buffer must be small before connecting, or the
			// window negotiated at the handshake lets megabytes through.
			dialer := &net.Dialer{Control: func(_, _ string, raw syscall.RawConn) error {
				var serr error
				err := raw.Control(func(fd uintptr) {
					serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
				})
				return errors.Join(err, serr)
			}}
			tr := &http.Transport{DialContext: dialer.DialContext}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr}).Get(streamURL(t, s, 5440))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			time.Sleep(600 * time.Millisecond) // 4 min of stream, far more than the buffers hold
			start := time.Now()
			tt.stop(room)
			waitFor(t, 3*time.Second, "handler freed", func() bool { return room.OpenStreams() == 0 })
			if took := time.Since(start); took > 1500*time.Millisecond {
				t.Errorf("handler freed %s after the stop, want promptly", took)
			}
		})
	}
}
