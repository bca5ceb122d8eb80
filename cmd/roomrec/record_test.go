package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"roomrec/bilibili/bilibilitest"
	"roomrec/recording"
)

// syncBuffer collects a Main's output while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testMain returns a Main configured by env (plus a temp data dir) with no
// .env file.
func testMain(t testing.TB, env map[string]string) (*Main, *syncBuffer, string) {
	t.Helper()
	dir := t.TempDir()
	full := map[string]string{"ROOMREC_DATA_DIR": dir, "ROOMREC_LOG_LEVEL": "debug", "ROOMREC_HTTP_ADDR": "127.0.0.1:0", "ROOMREC_MIN_FREE_MB": "0"}
	for k, v := range env {
		full[k] = v
	}
	out := &syncBuffer{}
	m := &Main{
		Stdin: strings.NewReader(""), Stdout: out, Stderr: out,
		Lookup:     envMap(full),
		DotenvPath: filepath.Join(dir, ".env"),
		Options: func(o *recording.Options) {
			o.PollInterval = time.Second
			o.RetryBackoff = 100 * time.Millisecond
			o.EndGrace = time.Second
			o.RiskBackoff, o.MaxBackoff = 300*time.Millisecond, 2*time.Second
		},
	}
	return m, out, dir
}

func TestRecordCommandEndToEnd(t *testing.T) {
	sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 4})
	room := sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, ShortID: 1, Anchor: "主播", Title: "今晚/PK"})
	m, out, dir := testMain(t, map[string]string{"BILIBILI_API_URL": sim.URL()})

	startMain(t, m, "record", "https://live.bilibili.com/1?from=search")

	waitFor(t, 5*time.Second, "danmaku connection", func() bool { return sim.DanmakuConnections(5440) == 1 })
	room.GoLive()
	waitFor(t, 5*time.Second, "a file being written", func() bool {
		parts, _ := filepath.Glob(filepath.Join(dir, "recordings", "5440", "*.flv.part"))
		return len(parts) == 1
	})
	time.Sleep(time.Second)

	// Ctrl-C: files are finished and Run returns promptly with no error.
	stopped := time.Now()
	if !stopWithin(t, m, 5*time.Second, "record", out) {
		t.FailNow()
	}
	t.Logf("stopped %s after the signal", time.Since(stopped))
	files, _ := filepath.Glob(filepath.Join(dir, "recordings", "5440", "*.flv"))
	parts, _ := filepath.Glob(filepath.Join(dir, "recordings", "5440", "*.part"))
	if len(files) != 1 || len(parts) != 0 {
		t.Fatalf("files %q, leftover parts %q; want one finished file", files, parts)
	}
	if !strings.Contains(filepath.Base(files[0]), "今晚_PK") {
		t.Errorf("file name %q does not carry the sanitized title", files[0])
	}
	if _, err := exec.LookPath("ffprobe"); err == nil {
		if out, err := exec.Command("ffprobe", "-v", "error", files[0]).CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("ffprobe: %v %s", err, out)
		}
	}
	for _, want := range []string{"watching room", "live: 今晚/PK", "file finished"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestRecordHLSOnlyRoom is `roomrec record 22637261` as a newcomer runs
// it against cmd/bilisim's HLS-only demo room: Bilibili lists no FLV
// stream, only HLS (TS and fMP4 in H.264, fMP4 in HEVC), and roomrec
// records it anyway, into the container and from the stream the
// configuration asks for.
func TestRecordHLSOnlyRoom(t *testing.T) {
	for _, tt := range []struct {
		name   string
		offer  string
		env    map[string]string
		ext    string
		codecs string
	}{
		{"default: H.264 fMP4 into .flv", "hls", nil, ".flv", "aac,h264"},
		{"HEVC first in ROOMREC_STREAM_ORDER: into .mp4", "hls", map[string]string{"ROOMREC_STREAM_ORDER": "fmp4-hevc,fmp4-avc"}, ".mp4", "aac,hevc"},
		{"TS alone, ROOMREC_CONTAINER=mp4", "ts/avc", map[string]string{"ROOMREC_CONTAINER": "mp4"}, ".mp4", "aac,h264"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 4})
			room := sim.AddRoom(bilibilitest.RoomConfig{RoomID: 22637261, UID: 703007996, Anchor: "HLS主播", Title: "只有 HLS"})
			offer, err := bilibilitest.ParseOffer(tt.offer)
			if err != nil {
				t.Fatal(err)
			}
			room.SetOffer(offer)
			env := map[string]string{"BILIBILI_API_URL": sim.URL()}
			for k, v := range tt.env {
				env[k] = v
			}
			m, out, dir := testMain(t, env)
			roomDir := filepath.Join(dir, "recordings", "22637261")
			startMain(t, m, "record", "22637261")

			waitFor(t, 5*time.Second, "danmaku connection", func() bool { return sim.DanmakuConnections(22637261) == 1 })
			room.GoLive()
			waitFor(t, 5*time.Second, "a "+tt.ext+" being written", func() bool {
				parts, _ := filepath.Glob(filepath.Join(roomDir, "*"+tt.ext+".part"))
				return len(parts) == 1
			})
			time.Sleep(2 * time.Second)
			if !stopWithin(t, m, 5*time.Second, "record", out) {
				t.FailNow()
			}
			files, _ := filepath.Glob(filepath.Join(roomDir, "*"+tt.ext))
			parts, _ := filepath.Glob(filepath.Join(roomDir, "*.part"))
			if len(files) != 1 || len(parts) != 0 {
				t.Fatalf("files %q, leftover parts %q; want one finished %s\n%s", files, parts, tt.ext, out)
			}
			if _, err := os.Stat(strings.TrimSuffix(files[0], tt.ext) + ".xml"); err != nil {
				t.Errorf("no danmaku file beside the video: %v", err)
			}
			if p, ok := probeClean(t, files[0]); ok {
				if got := p.sortedCodecs(); got != tt.codecs {
					t.Errorf("file holds %s, want %s", got, tt.codecs)
				}
				// 2 s of wall time at 4x is about 8 s of media.
				if p.Duration < 4*time.Second {
					t.Errorf("%s of media, want most of the broadcast", p.Duration)
				}
			}
			for _, want := range []string{"watching room", "live: 只有 HLS", "file finished"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("log lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// The operator's split and naming settings reach the recorder: files of
// about ROOMREC_SPLIT_EVERY of media, named from ROOMREC_FILE_NAME.
func TestRecordSplitsAndNamesAsConfigured(t *testing.T) {
	sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 8})
	sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, Anchor: "主播", Title: "今晚", Live: true})
	m, out, dir := testMain(t, map[string]string{"BILIBILI_API_URL": sim.URL(),
		"ROOMREC_SPLIT_EVERY": "10s", "ROOMREC_FILE_NAME": "{room}_{anchor}_{part}"})
	startMain(t, m, "record", "5440")
	roomDir := filepath.Join(dir, "recordings", "5440")
	waitFor(t, 15*time.Second, "three finished files", func() bool {
		files, _ := filepath.Glob(filepath.Join(roomDir, "*.flv"))
		return len(files) >= 3
	})
	if err := m.Close(context.Background()); err != nil {
		t.Fatalf("record: %v\n%s", err, out)
	}
	for i, want := range []string{"5440_主播_001.flv", "5440_主播_002.flv"} {
		path := filepath.Join(roomDir, want)
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("file %d: %v", i+1, err)
		}
		if _, err := exec.LookPath("ffprobe"); err != nil {
			continue
		}
		raw, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path).Output()
		if err != nil {
			t.Fatalf("ffprobe %s: %v", want, err)
		}
		// A split waits for the keyframe after the limit: at most a GOP more.
		if d, _ := strconv.ParseFloat(strings.TrimSpace(string(raw)), 64); d < 9.5 || d > 12 {
			t.Errorf("%s has %.1f s of media, want about 10 s", want, d)
		}
	}
}

// Risk control on the room lookup at start delays the recording; it does
// not end the command.
func TestRecordWaitsOutRiskControlAtStart(t *testing.T) {
	sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 4})
	sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, ShortID: 1, Live: true})
	sim.RiskControl(bilibilitest.PathRoomInit, 2)
	m, out, dir := testMain(t, map[string]string{"BILIBILI_API_URL": sim.URL()})
	startMain(t, m, "record", "1")
	waitFor(t, 15*time.Second, "the recording after risk control", func() bool {
		parts, _ := filepath.Glob(filepath.Join(dir, "recordings", "5440", "*.flv.part"))
		return len(parts) == 1
	})
	if err := m.Close(context.Background()); err != nil {
		t.Fatalf("record: %v\n%s", err, out)
	}
	if !strings.Contains(out.String(), "risk control") {
		t.Errorf("the wait was not logged:\n%s", out)
	}
}

func TestRecordCommandBadInput(t *testing.T) {
	sim := bilibilitest.Start(t, bilibilitest.Config{})
	sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440})
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no room", []string{"record"}, nil, "at least one room"},
		{"not a number", []string{"record", "abc"}, nil, "not a room number"},
		{"other site", []string{"record", "https://example.com/5440"}, nil, "not a live.bilibili.com link"},
		{"unknown room", []string{"record", "42"}, nil, "room 42 does not exist on Bilibili"},
		{"bad config", []string{"record", "5440"}, map[string]string{"ROOMREC_NETWORK": "ipx", "ROOMREC_QUALITY": "best"}, "ROOMREC_NETWORK"},
		{"unknown command", []string{"recrod"}, nil, `unknown command "recrod"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"BILIBILI_API_URL": sim.URL()}
			for k, v := range tt.env {
				env[k] = v
			}
			m, _, dir := testMain(t, env)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := m.Run(ctx, tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run(%q) = %v, want an error containing %q", tt.args, err, tt.want)
			}
			if files, _ := filepath.Glob(filepath.Join(dir, "recordings", "*", "*")); len(files) > 0 {
				t.Errorf("bad input left files: %q", files)
			}
		})
	}
}

// startMain runs the subcommand args of m, as main does, and closes m when
// the test ends if the test has not.
func startMain(t testing.TB, m *Main, args ...string) {
	t.Helper()
	if err := m.Run(context.Background(), args); err != nil {
		t.Fatalf("%s: %v", args[0], err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
