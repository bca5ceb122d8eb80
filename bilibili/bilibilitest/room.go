package bilibilitest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// RoomConfig describes a simulated room.
type RoomConfig struct {
	RoomID, ShortID, UID     int64 // ShortID 0 = none
	Anchor, Title, Cover     string
	AreaName, ParentAreaName string
	Live                     bool // already live (for a minute) when added
}

// Room is a simulated live room. Its methods are the controls a test uses
// to drive it; all are safe for concurrent use.
type Room struct {
	s   *Server
	cfg RoomConfig

	mu            sync.Mutex
	title         string
	live          bool
	liveKey       string
	liveStart     time.Time
	tsBase        int64 // ms added to every stream timestamp of this broadcast
	tsJump        int64 // ms added by JumpTimestamps
	sample        int   // which sample the stream plays
	generation    int   // bumped by ChangeResolution, so open streams notice
	notFoundUntil time.Time
	streamGone    bool // the encoder stopped but the API still says live
	hlsOnly       bool // play info offers no FLV stream
	stallUntil    time.Time
	streams       map[*streamConn]struct{}
	ws            map[*wsConn]struct{}
	streamReqs    []time.Time
	streamReqWake chan struct{} // closed and replaced at every stream request
	offer         Offer
	urlLifetime   time.Duration // of the stream URLs play info hands out
	revokedAt     time.Time     // URLs handed out before this answer 403
	hls           hlsState
}

// roomState is a consistent copy of what the API endpoints report.
type roomState struct {
	cfg       RoomConfig
	title     string
	live      bool
	liveKey   string
	liveStart time.Time
	hlsOnly   bool
	offer     Offer
	lifetime  time.Duration
}

func (st roomState) liveStatus() int {
	if st.live {
		return 1
	}
	return 0
}

func (st roomState) liveUnix() int64 {
	if !st.live {
		return 0
	}
	return st.liveStart.Unix()
}

func newRoom(s *Server, c RoomConfig) *Room {
	return &Room{
		s: s, cfg: c, title: c.Title,
		streams:       map[*streamConn]struct{}{},
		ws:            map[*wsConn]struct{}{},
		streamReqWake: make(chan struct{}),
		offer:         OfferDefault,
		urlLifetime:   time.Hour,
		hls:           hlsState{segmentReqWake: make(chan struct{})},
	}
}

// ID returns the real room id.
func (r *Room) ID() int64 { return r.cfg.RoomID }

func (r *Room) state() roomState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return roomState{cfg: r.cfg, title: r.title, live: r.live, liveKey: r.liveKey, liveStart: r.liveStart,
		hlsOnly: r.hlsOnly, offer: r.offer, lifetime: r.urlLifetime}
}

// OfferOnlyHLS makes play info list HLS streams only, with no FLV, as
// Bilibili does for some rooms and qualities; false restores FLV. It
// applies on top of SetOffer: the offer's HLS streams stay as they are.
func (r *Room) OfferOnlyHLS(only bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hlsOnly = only
}

// SetOffer sets which streams play info lists while the room is live
// (OfferDefault until then). Every stream is served whether or not it is
// listed: the offer is what a client is told, as on Bilibili.
func (r *Room) SetOffer(o Offer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.offer = o
}

// SetURLLifetime sets how long the stream URLs play info hands out from
// now on stay valid (an hour by default): the expires= in their query. An
// expired FLV or playlist URL answers 403, as Bilibili's CDN does.
func (r *Room) SetURLLifetime(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.urlLifetime = d
}

// ExpireURLs makes every stream URL play info has handed out for the room
// so far answer 403 from now on, as when their expires= has passed; URLs
// handed out later work.
func (r *Room) ExpireURLs() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.revokedAt = time.Now()
}

// LiveKey returns the current broadcast's live_key ("" when offline).
func (r *Room) LiveKey() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.liveKey
}

// GoLive starts a broadcast and sends LIVE twice, as Bilibili does: first
// with live_key and live_time, then bare.
func (r *Room) GoLive() {
	r.startLive(time.Now(), true)
}

func (r *Room) startLive(start time.Time, push bool) {
	r.mu.Lock()
	r.live = true
	r.streamGone = false
	r.liveStart = start.Truncate(time.Second)
	r.liveKey = strconv.FormatInt(530000000000000000+int64(r.s.intn(1e9)), 10)
	// Real streams carry the encoder's clock, which rarely starts at zero.
	r.tsBase = int64(10_000 + r.s.intn(90_000))
	r.tsJump = 0
	r.startHLSLocked()
	key, live := r.liveKey, r.liveStart.Unix()
	r.mu.Unlock()
	if push {
		r.broadcastMessages(
			fmt.Appendf(nil, `{"cmd":"LIVE","live_key":"%s","voice_background":"","sub_session_key":"%ssub_time:%d","live_platform":"pc","live_model":0,"roomid":%d,"live_time":%d}`, key, key, live, r.cfg.RoomID, live),
		)
		r.broadcastMessages(fmt.Appendf(nil, `{"cmd":"LIVE","roomid":%d}`, r.cfg.RoomID))
	}
}

// EndLive ends the broadcast: PREPARING (with a string roomid, as Bilibili
// sends it), then the streams close.
func (r *Room) EndLive() {
	r.setOffline()
	r.sendPreparing()
	r.closeStreams(false)
}

// EndLiveStreamFirst ends the broadcast the other way round, as when the
// streamer's encoder stops before Bilibili notices: the streams close and
// new stream requests answer 404 at once, while the API still says live;
// after gap the room goes offline and PREPARING is sent.
func (r *Room) EndLiveStreamFirst(gap time.Duration) {
	r.mu.Lock()
	r.stopHLSLocked()
	r.streamGone = true
	r.mu.Unlock()
	r.closeStreams(false)
	if !r.s.track() {
		return
	}
	go func() {
		defer r.s.conns.Done()
		t := time.NewTimer(gap)
		defer t.Stop()
		select {
		case <-t.C:
			r.setOffline()
			r.sendPreparing()
		case <-r.s.ctx.Done():
		}
	}()
}

func (r *Room) setOffline() {
	r.mu.Lock()
	r.stopHLSLocked()
	r.live = false
	r.liveKey = ""
	r.mu.Unlock()
}

func (r *Room) sendPreparing() {
	r.broadcastMessages(fmt.Appendf(nil, `{"cmd":"PREPARING","roomid":"%d"}`, r.cfg.RoomID))
}

// CutStream breaks every open stream connection mid-stream, and the next
// HLS segment answer mid-body; the room stays live, so a client should
// reconnect (or fetch the segment again).
func (r *Room) CutStream() {
	r.mu.Lock()
	r.hls.breaks = 1
	r.mu.Unlock()
	r.closeStreams(true)
}

func (r *Room) closeStreams(abrupt bool) {
	r.mu.Lock()
	conns := make([]*streamConn, 0, len(r.streams))
	for c := range r.streams {
		conns = append(conns, c)
	}
	r.mu.Unlock()
	for _, c := range conns {
		c.stop(abrupt)
	}
}

// StallStream makes open streams send nothing for d while keeping the
// connection open, as a stuck CDN does; HLS playlists stall likewise (see
// StallPlaylist).
func (r *Room) StallStream(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stallUntil = time.Now().Add(d)
	r.stallPlaylistLocked(d)
}

// StreamNotFoundFor makes stream and HLS playlist requests answer 404 for
// d, as the CDN does in the first seconds of a broadcast.
func (r *Room) StreamNotFoundFor(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notFoundUntil = time.Now().Add(d)
}

// ChangeResolution switches the stream to the other sample: open streams
// send new, different AVC and AAC sequence headers mid-stream, as a PK or an
// encoder change does. The H.264 fMP4 stream changes init from the next
// segment on, under a new EXT-X-MAP URI; the HEVC and TS streams, which
// have one sample each, go on unchanged (and so does the HEVC FLV stream,
// apart from repeating its sequence headers).
func (r *Room) ChangeResolution() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sample = 1 - r.sample
	r.generation++
	variant := r.sample
	r.newEpochLocked(func(e *hlsEpoch) {
		e.variant = variant
		e.mapTime = max(time.Now().Unix(), e.mapTime+1) // a new name, even within the second
	})
}

// JumpTimestamps shifts every later stream timestamp by d: FLV tags at
// once, HLS segments from the next one the encoder makes.
func (r *Room) JumpTimestamps(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tsJump += d.Milliseconds()
	jump := r.tsJump
	r.newEpochLocked(func(e *hlsEpoch) { e.jump = jump })
}

// SetTitle changes the title and sends ROOM_CHANGE.
func (r *Room) SetTitle(title string) {
	r.mu.Lock()
	r.title = title
	key := r.liveKey
	r.mu.Unlock()
	r.broadcastMessages(mustJSON(map[string]any{"cmd": "ROOM_CHANGE", "data": map[string]any{
		"title": title, "area_id": 236, "parent_area_id": 6, "area_name": r.cfg.AreaName,
		"parent_area_name": r.cfg.ParentAreaName, "live_key": key, "sub_session_key": key,
	}}))
}

// StreamRequests returns how many stream requests the room has had, 404s
// included.
func (r *Room) StreamRequests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.streamReqs)
}

// OpenStreams returns how many stream connections are open.
func (r *Room) OpenStreams() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.streams)
}

// WaitStreamRequest waits until the room has had n stream requests (n is
// 1-based, 404s included) and returns when the n-th arrived. It returns the
// context's error if ctx ends first.
func (r *Room) WaitStreamRequest(ctx context.Context, n int) (time.Time, error) {
	n = max(n, 1)
	for {
		r.mu.Lock()
		if len(r.streamReqs) >= n {
			t := r.streamReqs[n-1]
			r.mu.Unlock()
			return t, nil
		}
		wake := r.streamReqWake
		r.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

// noteStreamRequest records a stream request for StreamRequests and
// WaitStreamRequest.
func (r *Room) noteStreamRequest() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.streamReqs = append(r.streamReqs, time.Now())
	close(r.streamReqWake)
	r.streamReqWake = make(chan struct{})
}
