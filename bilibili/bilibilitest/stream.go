package bilibilitest

import (
	"bufio"
	"bytes"
	"embed"
	"fmt"
	"io"
	"net/http"
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
	script         *flv.Tag   // onMetaData, sent once per connection
	avcSeq, aacSeq *flv.Tag   // sequence headers, sent at the start and after a switch
	media          []*flv.Tag // audio and video frames, timestamps from 0
	keyframes      []int      // indexes into media of video keyframes
	duration       int64      // ms; the clip loops after this
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

func parseSample(raw []byte) (*sample, error) {
	r := flv.NewReader(bytes.NewReader(raw))
	if _, err := r.ReadHeader(); err != nil {
		return nil, err
	}
	smp := &sample{}
	var first int64 = -1
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
			smp.avcSeq = t
		case t.IsSequenceHeader() && t.Type == flv.TagAudio:
			smp.aacSeq = t
		default:
			if first < 0 {
				first = t.Timestamp
			}
			t.Timestamp -= first
			if t.IsKeyframe() {
				smp.keyframes = append(smp.keyframes, len(smp.media))
			}
			smp.media = append(smp.media, t)
		}
	}
	if smp.script == nil || smp.avcSeq == nil || smp.aacSeq == nil || len(smp.keyframes) == 0 || smp.keyframes[0] != 0 {
		return nil, fmt.Errorf("want onMetaData, both sequence headers and media starting with a keyframe")
	}
	// The clip loops one video frame after its last tag.
	smp.duration = smp.media[len(smp.media)-1].Timestamp + 34
	return smp, nil
}

// keyframeAtOrBefore returns the index in media of the last keyframe at or
// before offset ms.
func (smp *sample) keyframeAtOrBefore(offset int64) int {
	k := smp.keyframes[0]
	for _, i := range smp.keyframes {
		if smp.media[i].Timestamp > offset {
			break
		}
		k = i
	}
	return k
}

// keyframeAtOrAfter returns the index of the first keyframe at or after
// offset, and whether it is in the next loop.
func (smp *sample) keyframeAtOrAfter(offset int64) (int, bool) {
	for _, i := range smp.keyframes {
		if smp.media[i].Timestamp >= offset {
			return i, false
		}
	}
	return smp.keyframes[0], true
}

// streamConn is one open stream connection.
type streamConn struct {
	once   sync.Once
	done   chan struct{}
	mu     sync.Mutex
	abrupt bool
}

func (c *streamConn) stop(abrupt bool) {
	c.mu.Lock()
	c.abrupt = c.abrupt || abrupt
	c.mu.Unlock()
	c.once.Do(func() { close(c.done) })
}

func (c *streamConn) wasAbrupt() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.abrupt
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

// handleStream serves a room's live FLV stream: header, onMetaData and
// sequence headers, then frames from the keyframe at or before the live
// position (as a CDN's GOP cache does), paced at the configured speed.
func (s *Server) handleStream(w http.ResponseWriter, req *http.Request) {
	id, ok := streamRoomID(req.URL.Path)
	room := s.Room(id)
	if !ok || room == nil || !strings.HasSuffix(req.URL.Path, ".flv") {
		http.NotFound(w, req)
		return
	}
	room.noteStreamRequest()
	room.mu.Lock()
	live, notFound := room.live, time.Now().Before(room.notFoundUntil)
	c := &streamConn{done: make(chan struct{})}
	if live && !notFound {
		room.streams[c] = struct{}{}
	}
	room.mu.Unlock()
	if !live || notFound {
		http.NotFound(w, req)
		return
	}
	s.conns.Add(1)
	defer s.conns.Done()
	defer func() {
		room.mu.Lock()
		delete(room.streams, c)
		room.mu.Unlock()
	}()

	w.Header().Set("Content-Type", "video/x-flv")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	err := s.stream(room, c, bw, req)
	if err == errCut && c.wasAbrupt() {
		// Break the connection without a clean end of body, as a dropped
		// CDN connection does.
		bw.Flush()
		panic(http.ErrAbortHandler)
	}
	bw.Flush()
}

var errCut = fmt.Errorf("stream stopped")

// stream writes the stream until the connection is stopped, the client goes
// away or the server closes.
func (s *Server) stream(room *Room, c *streamConn, bw *bufio.Writer, req *http.Request) error {
	smps, _ := loadSamples()
	fw := flv.NewWriter(bw)
	if err := fw.WriteHeader(flv.FlagAudio | flv.FlagVideo); err != nil {
		return err
	}
	room.mu.Lock()
	liveStart, gen, smp := room.liveStart, room.generation, smps[room.sample]
	room.mu.Unlock()
	speed := s.cfg.Speed
	position := func() int64 { return int64(float64(time.Since(liveStart).Milliseconds()) * speed) }
	wallAt := func(pos int64) time.Time {
		return liveStart.Add(time.Duration(float64(pos) / speed * float64(time.Millisecond)))
	}

	out := &flv.Tag{}
	write := func(t *flv.Tag, ts int64) error {
		*out = *t
		out.Timestamp = ts
		return fw.WriteTag(out)
	}
	stamp := func(abs int64) int64 {
		room.mu.Lock()
		defer room.mu.Unlock()
		return room.tsBase + room.tsJump + abs
	}

	pos := position()
	loop, i := pos/smp.duration, smp.keyframeAtOrBefore(pos%smp.duration)
	if err := write(smp.script, 0); err != nil {
		return err
	}
	if err := write(smp.avcSeq, 0); err != nil {
		return err
	}
	if err := write(smp.aacSeq, 0); err != nil {
		return err
	}
	for {
		room.mu.Lock()
		stallUntil, curGen, curSample := room.stallUntil, room.generation, room.sample
		room.mu.Unlock()
		if curGen != gen {
			// A new encoder configuration: new sequence headers at the
			// current position, then the new clip from a keyframe.
			gen, smp = curGen, smps[curSample]
			abs := position()
			ts := stamp(abs)
			if err := write(smp.avcSeq, ts); err != nil {
				return err
			}
			if err := write(smp.aacSeq, ts); err != nil {
				return err
			}
			next, wrapped := smp.keyframeAtOrAfter(abs % smp.duration)
			loop, i = abs/smp.duration, next
			if wrapped {
				loop++
			}
		}
		tag := smp.media[i]
		abs := loop*smp.duration + tag.Timestamp
		wait := time.Until(wallAt(abs))
		if stall := time.Until(stallUntil); stall > wait {
			wait = stall
		}
		if wait > 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
			select {
			case <-time.After(wait):
			case <-c.done:
				return errCut
			case <-req.Context().Done():
				return req.Context().Err()
			case <-s.ctx.Done():
				return errCut
			}
			continue // the room may have changed while waiting
		}
		select {
		case <-c.done:
			return errCut
		default:
		}
		if err := write(tag, stamp(abs)); err != nil {
			return err
		}
		if i++; i == len(smp.media) {
			i, loop = 0, loop+1
		}
	}
}
