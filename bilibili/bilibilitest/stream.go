package bilibilitest

import (
	"bufio"
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"roomrec/recording/flv"
)

//go:embed testdata/sample_a.flv testdata/sample_b.flv
var sampleFiles embed.FS

// sample is one looped clip of the live stream, split into the tags a
// stream connection sends.
type sample struct {
	script           *flv.Tag   // onMetaData, sent once per connection
	videoSeq, aacSeq *flv.Tag   // sequence headers, sent at the start and after a switch
	media            []*flv.Tag // audio and video frames, timestamps from 0
	keyframes        []int      // indexes into media of video keyframes
	duration         int64      // ms; the clip loops after this
}

var (
	samplesOnce sync.Once
	samples     [2]*sample
	samplesErr  error
)

func loadSamples() ([2]*sample, error) {
	samplesOnce.Do(func() {
		for i, name := range []string{"testdata/sample_a.flv", "testdata/sample_b.flv"} {
			raw, err := sampleFiles.ReadFile(name)
			if err == nil {
				samples[i], err = parseSample(raw)
			}
			if err != nil {
				samplesErr = fmt.Errorf("bilibilitest: sample %s: %w", name, err)
				return
			}
		}
	})
	return samples, samplesErr
}

// parseSample splits a sample FLV into its tags. Media timestamps are made
// to start at zero, and audio past the end of the video is dropped so that
// the clip loops without either track going back in time.
func parseSample(raw []byte) (*sample, error) {
	r := flv.NewReader(bytes.NewReader(raw))
	if _, err := r.ReadHeader(); err != nil {
		return nil, err
	}
	smp := &sample{}
	var media []*flv.Tag
	var lastVideo, prevVideo int64 = -1, -1
	for {
		t, err := r.ReadTag()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		t = t.Clone()
		switch {
		case t.Type == flv.TagScript:
			smp.script = t
		case t.IsSequenceHeader() && t.Type == flv.TagVideo:
			smp.videoSeq = t
		case t.IsSequenceHeader() && t.Type == flv.TagAudio:
			smp.aacSeq = t
		default:
			if t.Type == flv.TagVideo {
				prevVideo, lastVideo = lastVideo, t.Timestamp
			}
			media = append(media, t)
		}
	}
	if smp.script == nil || smp.videoSeq == nil || smp.aacSeq == nil || prevVideo < 0 {
		return nil, fmt.Errorf("want onMetaData, both sequence headers and video frames")
	}
	first := media[0].Timestamp
	// The clip lasts until the frame after its last one; audio in that
	// stretch or later would overlap the next loop's audio.
	smp.duration = lastVideo + (lastVideo - prevVideo) - first
	for _, t := range media {
		t.Timestamp -= first
		if t.Timestamp >= smp.duration {
			continue
		}
		if t.IsKeyframe() {
			smp.keyframes = append(smp.keyframes, len(smp.media))
		}
		smp.media = append(smp.media, t)
	}
	if len(smp.keyframes) == 0 || smp.keyframes[0] != 0 {
		return nil, fmt.Errorf("want media starting with a video keyframe")
	}
	return smp, nil
}

// keyframeAtOrBefore returns the loop and index in media of the last
// keyframe at or before abs, a position in ms since the broadcast began.
func (smp *sample) keyframeAtOrBefore(abs int64) (loop int64, i int) {
	loop, offset := abs/smp.duration, abs%smp.duration
	i = smp.keyframes[0]
	for _, k := range smp.keyframes {
		if smp.media[k].Timestamp > offset {
			break
		}
		i = k
	}
	return loop, i
}

// keyframeAtOrAfter returns the loop and index in media of the first
// keyframe at or after abs, which may be in the next loop.
func (smp *sample) keyframeAtOrAfter(abs int64) (loop int64, i int) {
	loop, offset := abs/smp.duration, abs%smp.duration
	for _, k := range smp.keyframes {
		if smp.media[k].Timestamp >= offset {
			return loop, k
		}
	}
	return loop + 1, smp.keyframes[0]
}

// streamConn is one open stream connection, as the room's controls see it.
type streamConn struct {
	once   sync.Once
	done   chan struct{}
	mu     sync.Mutex
	abrupt bool
	rc     *http.ResponseController // nil once the handler has returned
}

// stop ends the connection: abruptly (no clean end of the body, like a
// dropped CDN connection) or cleanly (end of broadcast). A write blocked on
// a client that stopped reading is given a deadline, so stop is prompt
// either way.
func (c *streamConn) stop(abrupt bool) {
	c.mu.Lock()
	c.abrupt = c.abrupt || abrupt
	if c.rc != nil {
		grace := time.Second // room to write the end of a clean body
		if abrupt {
			grace = 0
		}
		c.rc.SetWriteDeadline(time.Now().Add(grace))
	}
	c.mu.Unlock()
	c.once.Do(func() { close(c.done) })
}

func (c *streamConn) wasAbrupt() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.abrupt
}

// detach is called as the handler returns, so that a later stop does not
// touch the connection: a cleanly ended response leaves it open for the
// client's next request (often the reconnect). A deadline stop already set
// still bounds the end of the body; net/http clears it after that.
func (c *streamConn) detach() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rc = nil
}

// streamRoomID finds the room in a stream path such as
// /live-bvc/375028/live_9617619_bs_5440_bluray.flv.
func streamRoomID(path string) (int64, bool) {
	_, rest, ok := strings.Cut(path, "_bs_")
	if !ok {
		return 0, false
	}
	digits, _, _ := strings.Cut(rest, "_")
	id, err := strconv.ParseInt(digits, 10, 64)
	return id, err == nil
}

// handleStream serves everything under /live-bvc/: FLV streams
// (…/live_<uid>_bs_<room>_bluray.flv, _prohevc.flv for HEVC, _1500.flv and
// the like below qn 10000) and HLS playlists, inits and segments (see
// hls.go). Every quality plays the same sample; the name tells them apart.
func (s *Server) handleStream(w http.ResponseWriter, req *http.Request) {
	s.noteStreamCookie(req)
	// /live-bvc/<n>/<stream>.flv, <stream>.m3u8 or <stream>/<file>
	rest, _ := strings.CutPrefix(req.URL.Path, "/live-bvc/")
	_, rest, _ = strings.Cut(rest, "/")
	name, file, inDir := strings.Cut(rest, "/")
	ext := ""
	if !inDir {
		ext = path.Ext(name)
		name = strings.TrimSuffix(name, ext)
	}
	codec := codecOfSuffix(name[strings.LastIndexByte(name, '_')+1:])
	id, ok := streamRoomID(name)
	room := s.Room(id)
	if !ok || room == nil || codec == "" || strings.Contains(file, "/") {
		http.NotFound(w, req)
		return
	}
	switch {
	case ext == ".flv":
		s.handleFLV(w, req, room, codec)
	case ext == ".m3u8":
		s.handleHLS(w, req, room, hlsRequest{st: hlsStream{"ts", codec}, stream: name})
	case inDir && strings.HasSuffix(file, ".ts"):
		s.handleHLS(w, req, room, hlsRequest{st: hlsStream{"ts", codec}, stream: name, file: file})
	case inDir && (file == "index.m3u8" || strings.HasSuffix(file, ".m4s")):
		s.handleHLS(w, req, room, hlsRequest{st: hlsStream{"fmp4", codec}, stream: name, file: file})
	default:
		http.NotFound(w, req)
	}
}

// handleFLV serves a room's live FLV stream: header, onMetaData and
// sequence headers, then frames from the keyframe at or before the live
// position (as a CDN's GOP cache does), paced at the configured speed. It
// answers 403 to a URL play info did not hand out or that has expired, and
// 404 while the room is offline, its encoder has stopped, or
// StreamNotFoundFor is in force.
func (s *Server) handleFLV(w http.ResponseWriter, req *http.Request, room *Room, codec string) {
	room.noteStreamRequest()
	if !s.urlAllowed(room, req.URL.Query(), true) {
		http.Error(w, "403 Forbidden", http.StatusForbidden)
		return
	}
	if !s.track() {
		http.Error(w, "server closing", http.StatusServiceUnavailable)
		return
	}
	defer s.conns.Done()
	c := &streamConn{done: make(chan struct{}), rc: http.NewResponseController(w)}
	defer c.detach()
	room.mu.Lock()
	available := room.live && !room.streamGone && !time.Now().Before(room.notFoundUntil)
	if available {
		room.streams[c] = struct{}{}
	}
	room.mu.Unlock()
	if !available {
		http.NotFound(w, req)
		return
	}
	defer func() {
		room.mu.Lock()
		delete(room.streams, c)
		room.mu.Unlock()
	}()

	w.Header().Set("Content-Type", "video/x-flv")
	w.WriteHeader(http.StatusOK)
	size := 32 << 10
	if s.cfg.Unpaced {
		// Unpaced, the stream is as fast as the buffer is large: fewer,
		// larger writes keep the simulator's own cost small beside the
		// client's.
		size = 256 << 10
	}
	bw := bufio.NewWriterSize(w, size)
	err := s.stream(room, c, bw, req.Context().Done(), codec)
	if err == errStopped && c.wasAbrupt() {
		// Break the connection without a clean end of body, as a dropped
		// CDN connection does.
		bw.Flush()
		panic(http.ErrAbortHandler)
	}
	bw.Flush()
}

// errStopped ends a stream that a control or Close stopped.
var errStopped = errors.New("stream stopped")

// sendAhead is how early, in wall time, a tag may go out. Sending every tag
// due within it in one wake-up keeps pacing cheap at high Speed.
const sendAhead = 20 * time.Millisecond

// liveClock maps positions in the broadcast (ms of media since it began) to
// wall time at the configured speed.
type liveClock struct {
	start time.Time
	speed float64
}

func (lc liveClock) position(now time.Time) int64 {
	return int64(float64(now.Sub(lc.start).Milliseconds()) * lc.speed)
}

func (lc liveClock) at(pos int64) time.Time {
	return lc.start.Add(time.Duration(float64(pos) / lc.speed * float64(time.Millisecond)))
}

// stream writes the stream until the connection is stopped, the client goes
// away (clientGone) or the server closes. It returns errStopped when stopped
// and the write error otherwise.
func (s *Server) stream(room *Room, c *streamConn, bw *bufio.Writer, clientGone <-chan struct{}, codec string) error {
	smps, _ := loadSamples()
	if codec == "hevc" {
		// One HEVC sample: a resolution change repeats its headers.
		hls, _ := loadHLSSamples()
		smps = [2]*sample{hls.flvHEVC, hls.flvHEVC}
	}
	fw := flv.NewWriter(bw)
	out := &flv.Tag{}
	// Each sample frame is padded once per connection: the samples are a
	// few hundred frames, and padding every frame sent would cost an
	// unpaced stream more than the client reading it.
	padded := map[*flv.Tag][]byte{}
	write := func(t *flv.Tag, ts int64) error {
		*out = *t
		out.Timestamp = ts
		if s.cfg.VideoFiller > 0 && t.Type == flv.TagVideo && !t.IsSequenceHeader() && !t.IsEndOfSequence() {
			data, ok := padded[t]
			if !ok {
				data = appendFiller(append([]byte(nil), t.Data...), s.cfg.VideoFiller, codec)
				padded[t] = data
			}
			out.Data = data
		}
		return fw.WriteTag(out)
	}

	room.mu.Lock()
	clock := liveClock{start: room.liveStart, speed: s.cfg.Speed}
	gen, smp := room.generation, smps[room.sample]
	room.mu.Unlock()

	if err := fw.WriteHeader(flv.FlagAudio | flv.FlagVideo); err != nil {
		return err
	}
	for _, t := range []*flv.Tag{smp.script, smp.videoSeq, smp.aacSeq} {
		if err := write(t, 0); err != nil {
			return err
		}
	}
	loop, i := smp.keyframeAtOrBefore(clock.position(time.Now()))
	last := int64(-1) // position of the last media tag written

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		room.mu.Lock()
		stallUntil, curGen, curSample := room.stallUntil, room.generation, room.sample
		shift := room.tsBase + room.tsJump
		room.mu.Unlock()

		if curGen != gen {
			// A new encoder configuration: new sequence headers, then the
			// other clip from its next keyframe, all stamped after what
			// was already sent.
			gen, smp = curGen, smps[curSample]
			loop, i = smp.keyframeAtOrAfter(max(last+1, clock.position(time.Now())))
			ts := shift + loop*smp.duration + smp.media[i].Timestamp
			if err := write(smp.videoSeq, ts); err != nil {
				return err
			}
			if err := write(smp.aacSeq, ts); err != nil {
				return err
			}
		}

		tag := smp.media[i]
		pos := loop*smp.duration + tag.Timestamp
		now := time.Now()
		wait := clock.at(pos).Sub(now) - sendAhead
		if s.cfg.Unpaced {
			wait = 0
		}
		if stall := stallUntil.Sub(now); stall > wait {
			wait = stall
		}
		if wait > 0 {
			// Out to the network before waiting, as a CDN sends: net/http
			// would otherwise hold a few KiB of small frames until more
			// come, delivering the start of the stream late and in a burst.
			if err := bw.Flush(); err != nil {
				return err
			}
			if err := c.rc.Flush(); err != nil {
				return err
			}
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-c.done:
				return errStopped
			case <-clientGone:
				return errors.New("client went away")
			case <-s.ctx.Done():
				return errStopped
			}
			continue // the room may have changed while waiting
		}
		select {
		case <-c.done:
			return errStopped
		default:
		}
		if err := write(tag, shift+pos); err != nil {
			return err
		}
		last = pos
		if i++; i == len(smp.media) {
			i, loop = 0, loop+1
		}
	}
}

// appendFiller appends a filler-data NAL unit of n bytes (4-byte length
// prefix included) to a video tag's data: H.264 NAL type 12 or HEVC NAL
// type 38 (two-byte header), 0xFF payload, then the RBSP stop bit. The
// samples use 4-byte NAL lengths.
func appendFiller(data []byte, n int, codec string) []byte {
	header := []byte{0x0c}
	if codec == "hevc" {
		header = []byte{38 << 1, 1}
	}
	body := max(n-4, len(header)+1)
	data = append(data, byte(body>>24), byte(body>>16), byte(body>>8), byte(body))
	data = append(data, header...)
	data = append(data, bytes.Repeat([]byte{0xff}, body-len(header)-1)...)
	return append(data, 0x80)
}
