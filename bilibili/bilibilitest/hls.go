package bilibilitest

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HLS as Bilibili's CDN serves it (see DESIGN.md, "Bilibili endpoints
// used"). A playlist lists the last hlsWindow segments of 1 s, named by
// sequence number; a new one appears every second of broadcast (at the
// server's Speed) while the room is live. The fMP4 playlist, as measured
// on the real CDN:
//
//	#EXTM3U
//	#EXT-X-VERSION:7
//	#EXT-X-START:TIME-OFFSET=0
//	#EXT-X-MEDIA-SEQUENCE:1788796260
//	#EXT-X-TARGETDURATION:1
//	#EXT-X-MAP:URI="h1788488973.m4s"
//	#EXT-BILI-AUX:1250faff|K|1cdf5|a9a7bf95
//	#EXTINF:1.00,1cdf5|a9a7bf95
//	1788796260.m4s
//
// (a real answer, as published by people who recorded it; other recorded
// ones agree). EXTINF's title and the last two fields of EXT-BILI-AUX are
// the segment's size and CRC-32 in lowercase hex; EXT-BILI-AUX's second
// field is K when the segment starts with a keyframe (N otherwise; every
// sample segment starts with one), and its first is the segment's start
// time in ms, hex (inferred: consecutive values differ by the segments'
// durations). Real segments are moof and mdat boxes only, several pairs a
// second and no styp, and the simulator serves them so.
//
// The TS playlist has the same lines with VERSION 3 and no MAP, and lives
// beside the stream's directory (live_…_bluray.m3u8, segments
// live_…_bluray/<seq>.ts), as recorded TS URLs and playlists do. Whether
// Bilibili's own CDN gives TS playlists EXT-BILI-AUX lines and size|crc
// titles no recorded answer showed, so those are modelled on the fMP4 one.
//
// The samples loop forever: each served segment is a sample segment with
// its timestamps moved on (fMP4: mfhd and tfdt; TS: PTS, DTS, PCR and the
// continuity counters), so time runs on unbroken across loops.
const (
	hlsWindow = 6  // segments a playlist lists, as on the real CDN
	hlsKeep   = 30 // segments still served after they leave the window
)

// hlsStream is one of a room's HLS streams.
type hlsStream struct {
	format string // "ts" or "fmp4"
	codec  string // "avc" or "hevc"
}

// hlsEpoch is a stretch of a broadcast's segments made alike: from segment
// fromK on, the sample variant and the timestamp jump in force.
type hlsEpoch struct {
	fromK   int64
	variant int   // which sample, as Room.sample
	jump    int64 // ms, as Room.tsJump
	mapTime int64 // unix time naming the init when the variant changed: h<mapTime>.m4s
}

// hlsState is a room's HLS side, guarded by Room.mu.
type hlsState struct {
	seqBase int64      // media sequence number of the broadcast's first segment
	epochs  []hlsEpoch // empty until the first broadcast
	endK    int64      // segments made when the encoder last stopped

	stallK         int64 // a stalled playlist ends here
	stallUntil     time.Time
	stallSigned    time.Time // a node's stall holds only URLs signed before this; zero: every URL
	notFoundUntil  time.Time
	stale          int   // playlist answers still to serve one segment behind
	lastK          int64 // where the last playlist answer ended
	corrupt        int   // segment answers still to corrupt
	breaks         int   // segment answers still to break off mid-body
	endList        bool  // end broadcasts with #EXT-X-ENDLIST rather than 404
	playlistReqs   int
	initReqs       int
	segmentReqs    []time.Time
	fetched        int64         // Unpaced: one past the newest segment fetched
	segmentReqWake chan struct{} // closed and replaced at every segment request
}

// startHLSLocked begins a broadcast's HLS streams. r.mu must be held.
func (r *Room) startHLSLocked() {
	h := &r.hls
	h.seqBase = 100_000_000 + int64(r.s.intn(1_000_000_000))
	h.epochs = []hlsEpoch{{variant: r.sample, mapTime: r.liveStart.Unix()}}
	h.lastK, h.endK, h.stale, h.fetched = 0, 0, 0, 0
}

// madeLocked returns how many segments the encoder has made this
// broadcast. r.mu must be held.
func (r *Room) madeLocked(now time.Time) int64 {
	if !r.live || r.streamGone {
		return r.hls.endK
	}
	if r.s.cfg.Unpaced {
		// The encoder keeps a playlist's window ahead of the fastest
		// client, however fast it fetches.
		return r.hls.fetched + hlsWindow
	}
	clock := liveClock{start: r.liveStart, speed: r.s.cfg.Speed}
	return max(0, clock.position(now)/1000)
}

// stopHLSLocked notes where the encoder stopped. r.mu must be held, before
// live or streamGone changes.
func (r *Room) stopHLSLocked() {
	r.hls.endK = r.madeLocked(time.Now())
}

// newEpochLocked starts a new epoch at the next segment the encoder makes,
// changed by change. r.mu must be held.
func (r *Room) newEpochLocked(change func(*hlsEpoch)) {
	h := &r.hls
	if len(h.epochs) == 0 {
		return // the next broadcast starts from the room's state
	}
	e := h.epochs[len(h.epochs)-1]
	e.fromK = r.madeLocked(time.Now())
	change(&e)
	if last := &h.epochs[len(h.epochs)-1]; last.fromK == e.fromK {
		*last = e // no segment was made in between
		return
	}
	h.epochs = append(h.epochs, e)
}

// epochLocked returns the epoch segment k belongs to and its index.
func (r *Room) epochLocked(k int64) (hlsEpoch, int) {
	h := &r.hls
	i := len(h.epochs) - 1
	for i > 0 && h.epochs[i].fromK > k {
		i--
	}
	return h.epochs[i], i
}

// mapTimeLocked returns the h<time>.m4s name of the init that segment k of
// an fMP4 stream needs: the time its sample came into use.
func (r *Room) mapTimeLocked(st hlsStream, k int64) int64 {
	smps, _ := loadHLSSamples()
	_, i := r.epochLocked(k)
	e := r.hls.epochs
	for i > 0 && smps.fmp4[st.codec][e[i-1].variant] == smps.fmp4[st.codec][e[i].variant] {
		i--
	}
	return e[i].mapTime
}

// segmentPlan is how segment k of a stream is made. It is computed under
// r.mu and built outside it.
type segmentPlan struct {
	st       hlsStream
	k        int64
	variant  int
	offsetMs int64                         // the encoder's clock: tsBase plus jumps
	padded   map[*fmp4Segment]*fmp4Segment // Server.paddedFMP4
}

func (r *Room) planLocked(st hlsStream, k int64) segmentPlan {
	e, _ := r.epochLocked(k)
	return segmentPlan{st: st, k: k, variant: e.variant, offsetMs: max(0, r.tsBase+e.jump), padded: r.s.paddedFMP4}
}

// segmentInfo is what a playlist says about a segment.
type segmentInfo struct {
	size     int
	crc      uint32
	duration float64 // seconds
	startMs  int64   // presentation time of its first video frame
	keyframe bool
}

// build makes the segment's bytes as served.
func (p segmentPlan) build() ([]byte, segmentInfo) {
	smps, _ := loadHLSSamples()
	n := int64(smps.segments)
	i, loop := int(p.k%n), p.k/n
	var data []byte
	var info segmentInfo
	switch p.st.format {
	case "fmp4":
		smp := smps.fmp4[p.st.codec][p.variant]
		seg := smp.segments[i]
		if padded, ok := p.padded[seg]; ok {
			seg = padded
		}
		shift := map[uint32]uint64{}
		for id, tr := range smp.init.tracks {
			shift[id] = uint64(loop)*smp.loop[id] + uint64(p.offsetMs)*uint64(tr.timescale)/1000
		}
		data = seg.rewrite(nil, uint32(p.k*int64(smps.moofs)+1), shift)
		scale := uint64(smp.init.tracks[smp.video].timescale)
		v := seg.samples[smp.video][0]
		start := int64(seg.start[smp.video]+shift[smp.video]) + int64(v.cto)
		info = segmentInfo{
			duration: float64(seg.duration[smp.video]) / float64(scale),
			startMs:  start * 1000 / int64(scale),
			keyframe: v.sync,
		}
	case "ts":
		smp := smps.ts[p.st.codec][p.variant]
		seg := smp.segments[i]
		shift := uint64(loop)*uint64(n)*90000 + uint64(p.offsetMs)*90
		cc := map[uint16]int{}
		for pid, count := range smp.packets {
			cc[pid] = int(loop * int64(count) % 16)
		}
		data = seg.rewrite(nil, shift, cc)
		info = segmentInfo{
			duration: smp.durations[i],
			startMs:  int64((seg.videoPTS+shift)%(1<<33)) / 90,
			keyframe: seg.keyframe,
		}
	}
	info.size, info.crc = len(data), crc32.ChecksumIEEE(data)
	return data, info
}

// segmentCache keeps the segments built last, so that the playlist that
// lists a segment (with its size and CRC) and the request that fetches it
// build it once between them, and the six playlists that list a segment
// build it once: with VideoFiller a segment is a megabyte to rewrite and
// checksum.
type segmentCache struct {
	mu sync.Mutex
	m  map[segmentKey]builtSegment
}

// segmentKey is everything a built segment depends on.
type segmentKey struct {
	room     int64
	st       hlsStream
	k        int64
	variant  int
	offsetMs int64
}

type builtSegment struct {
	data []byte // shared: never changed once built
	info segmentInfo
}

// segmentCacheSize bounds the cache: a few windows' worth.
const segmentCacheSize = 4 * hlsWindow

// build returns segment p of room, built now or earlier. The data is
// shared and must not be changed.
func (c *segmentCache) build(room int64, p segmentPlan) ([]byte, segmentInfo) {
	key := segmentKey{room: room, st: p.st, k: p.k, variant: p.variant, offsetMs: p.offsetMs}
	c.mu.Lock()
	b, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return b.data, b.info
	}
	data, info := p.build()
	c.mu.Lock()
	if len(c.m) >= segmentCacheSize {
		// Those before this one's window are done with.
		for old := range c.m {
			if old.room == room && old.k < p.k-hlsWindow {
				delete(c.m, old)
			}
		}
	}
	if c.m == nil || len(c.m) >= segmentCacheSize {
		c.m = map[segmentKey]builtSegment{} // rebuilt if asked for again
	}
	c.m[key] = builtSegment{data: data, info: info}
	c.mu.Unlock()
	return data, info
}

// hlsRequest is a parsed HLS URL.
type hlsRequest struct {
	st     hlsStream
	stream string // live_<uid>_bs_<room>_<suffix>
	file   string // "" (the TS playlist), "index.m3u8", "h<unix>.m4s", "<seq>.m4s", "<seq>.ts"
}

// handleHLS serves a playlist, init or media segment. URLs from play info
// carry expires= and sign=; once they have expired (or ExpireURLs was
// called) the CDN answers 403. A segment's URI in a playlist is relative
// and bare, so a client that resolves it as RFC 3986 says sends no query:
// such segment and init requests are served, as the CDN serves them; with
// a query, they are checked like the playlist.
func (s *Server) handleHLS(w http.ResponseWriter, req *http.Request, room *Room, hr hlsRequest) {
	q := req.URL.Query()
	switch {
	case hr.file == "" || hr.file == "index.m3u8":
		room.mu.Lock()
		room.hls.playlistReqs++
		room.mu.Unlock()
		if !s.urlAllowed(room, q, true) {
			http.Error(w, "403 Forbidden", http.StatusForbidden)
			return
		}
		s.servePlaylist(w, room, hr, s.signedAt(q))
	case strings.HasPrefix(hr.file, "h") && strings.HasSuffix(hr.file, ".m4s"):
		room.mu.Lock()
		room.hls.initReqs++
		room.mu.Unlock()
		if !s.urlAllowed(room, q, false) {
			http.Error(w, "403 Forbidden", http.StatusForbidden)
			return
		}
		serveInit(w, req, room, hr)
	default:
		room.noteSegmentRequest()
		if !s.urlAllowed(room, q, false) {
			http.Error(w, "403 Forbidden", http.StatusForbidden)
			return
		}
		serveSegment(w, req, room, hr)
	}
}

// servePlaylist answers with the current window, 404 while the stream is
// not there (offline, encoder stopped, StreamNotFoundFor,
// PlaylistNotFoundFor, or no segment made yet). signed is when play info
// handed out the playlist's URL, which decides whether a node's stall
// (StallPlaylistNode) applies to it.
func (s *Server) servePlaylist(w http.ResponseWriter, room *Room, hr hlsRequest, signed time.Time) {
	now := time.Now()
	room.mu.Lock()
	h := &room.hls
	producing := room.live && !room.streamGone
	ended := !producing && h.endList && len(h.epochs) > 0
	if (!producing && !ended) || now.Before(room.notFoundUntil) || now.Before(h.notFoundUntil) {
		room.mu.Unlock()
		http.NotFound(w, nil)
		return
	}
	k := room.madeLocked(now)
	if producing && now.Before(h.stallUntil) && (h.stallSigned.IsZero() || signed.Before(h.stallSigned)) {
		k = min(k, h.stallK)
	}
	if h.stale > 0 && h.lastK > 0 {
		h.stale--
		k = min(k, h.lastK-1)
	}
	h.lastK = k
	first := max(0, k-hlsWindow)
	var plans []segmentPlan
	var maps []int64
	for i := first; i < k; i++ {
		plans = append(plans, room.planLocked(hr.st, i))
		if hr.st.format == "fmp4" {
			maps = append(maps, room.mapTimeLocked(hr.st, i))
		}
	}
	seqBase := h.seqBase
	room.mu.Unlock()
	if len(plans) == 0 {
		http.NotFound(w, nil)
		return
	}

	var b strings.Builder
	version := 3
	if hr.st.format == "fmp4" {
		version = 7
	}
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:%d\n#EXT-X-START:TIME-OFFSET=0\n#EXT-X-MEDIA-SEQUENCE:%d\n#EXT-X-TARGETDURATION:1\n", version, seqBase+first)
	for i, p := range plans {
		if hr.st.format == "fmp4" && (i == 0 || maps[i] != maps[i-1]) {
			// A new init applies to the segments after it (RFC 8216
			// 4.3.2.5), so a change mid-window gets its own MAP.
			fmt.Fprintf(&b, "#EXT-X-MAP:URI=\"h%d.m4s\"\n", maps[i])
		}
		_, info := s.built.build(room.cfg.RoomID, p)
		key := "N"
		if info.keyframe {
			key = "K"
		}
		fmt.Fprintf(&b, "#EXT-BILI-AUX:%x|%s|%x|%x\n#EXTINF:%.2f,%x|%x\n", info.startMs, key, info.size, info.crc, info.duration, info.size, info.crc)
		if hr.st.format == "fmp4" {
			fmt.Fprintf(&b, "%d.m4s\n", seqBase+p.k)
		} else {
			fmt.Fprintf(&b, "%s/%d.ts\n", hr.stream, seqBase+p.k)
		}
	}
	if ended {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.Write([]byte(b.String()))
}

// serveInit serves an init segment this broadcast has used.
func serveInit(w http.ResponseWriter, req *http.Request, room *Room, hr hlsRequest) {
	t, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(hr.file, "h"), ".m4s"), 10, 64)
	if err != nil || hr.st.format != "fmp4" {
		http.NotFound(w, req)
		return
	}
	smps, _ := loadHLSSamples()
	var init []byte
	room.mu.Lock()
	for _, e := range room.hls.epochs {
		if room.mapTimeLocked(hr.st, e.fromK) == t {
			init = smps.fmp4[hr.st.codec][e.variant].init.raw
			break
		}
	}
	room.mu.Unlock()
	if init == nil {
		http.NotFound(w, req)
		return
	}
	w.Header().Set("Content-Type", "video/mp4")
	w.Header().Set("Content-Length", strconv.Itoa(len(init)))
	w.Write(init)
}

// serveSegment serves a media segment the encoder has made, if it is
// recent enough for the CDN to keep it; corrupted or broken off when a
// control asks.
func serveSegment(w http.ResponseWriter, req *http.Request, room *Room, hr hlsRequest) {
	ext := ".m4s"
	if hr.st.format == "ts" {
		ext = ".ts"
	}
	seq, err := strconv.ParseInt(strings.TrimSuffix(hr.file, ext), 10, 64)
	if err != nil || !strings.HasSuffix(hr.file, ext) {
		http.NotFound(w, req)
		return
	}
	room.mu.Lock()
	h := &room.hls
	k := seq - h.seqBase
	made := room.madeLocked(time.Now())
	if len(h.epochs) == 0 || k < 0 || k >= made || k < made-hlsKeep {
		room.mu.Unlock()
		http.NotFound(w, req)
		return
	}
	plan := room.planLocked(hr.st, k)
	h.fetched = max(h.fetched, k+1)
	corrupt, broken := h.corrupt > 0, h.breaks > 0
	if corrupt {
		h.corrupt--
	}
	if broken {
		h.breaks--
	}
	room.mu.Unlock()

	data, _ := room.s.built.build(room.cfg.RoomID, plan)
	if corrupt {
		data = bytes.Clone(data) // the cached copy stays whole
		// One flipped byte near the end, in the last mdat or the last TS
		// packet's payload: the segment still parses, its CRC does not
		// match.
		data[len(data)-10] ^= 0xff
	}
	w.Header().Set("Content-Type", map[string]string{".m4s": "video/mp4", ".ts": "video/mp2t"}[ext])
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	if broken {
		w.Write(data[:len(data)/2])
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // a dropped connection, mid-body
	}
	w.Write(data)
}

// noteSegmentRequest records a media segment request for SegmentRequests
// and WaitSegmentRequest.
func (r *Room) noteSegmentRequest() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hls.segmentReqs = append(r.hls.segmentReqs, time.Now())
	close(r.hls.segmentReqWake)
	r.hls.segmentReqWake = make(chan struct{})
}

// PlaylistRequests returns how many HLS playlist requests the room has had,
// of any format and codec, refused ones included.
func (r *Room) PlaylistRequests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hls.playlistReqs
}

// InitRequests returns how many fMP4 init segment requests the room has
// had, refused ones included.
func (r *Room) InitRequests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hls.initReqs
}

// SegmentRequests returns how many HLS media segment requests (not init
// segments) the room has had, refused ones included.
func (r *Room) SegmentRequests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.hls.segmentReqs)
}

// WaitSegmentRequest waits until the room has had n media segment requests
// (n is 1-based, refused ones included) and returns when the n-th arrived,
// so a benchmark can time "LIVE → first segment request". It returns the
// context's error if ctx ends first.
func (r *Room) WaitSegmentRequest(ctx context.Context, n int) (time.Time, error) {
	n = max(n, 1)
	for {
		r.mu.Lock()
		if len(r.hls.segmentReqs) >= n {
			t := r.hls.segmentReqs[n-1]
			r.mu.Unlock()
			return t, nil
		}
		wake := r.hls.segmentReqWake
		r.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

// PlaylistNotFoundFor makes HLS playlist requests answer 404 for d, while
// segments already made are still served, as a CDN node that lost the
// playlist does.
func (r *Room) PlaylistNotFoundFor(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hls.notFoundUntil = time.Now().Add(d)
}

// StallPlaylist makes HLS playlists stop growing for d: they keep answering
// the window they had, as a stuck CDN node does. The encoder goes on, so
// when the stall ends the window jumps to the live position.
func (r *Room) StallPlaylist(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stallPlaylistLocked(d)
}

func (r *Room) stallPlaylistLocked(d time.Duration) {
	now := time.Now()
	h := &r.hls
	if !now.Before(h.stallUntil) {
		h.stallK = r.madeLocked(now)
	}
	h.stallUntil = now.Add(d)
	h.stallSigned = time.Time{}
}

// StallPlaylistNode is StallPlaylist for one stuck CDN node: for d, only
// the playlists of URLs play info has handed out so far stop growing,
// while URLs handed out from now on (fresh play info, which leads to
// another node) answer the live window. It replaces a stall in progress.
func (r *Room) StallPlaylistNode(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	h := &r.hls
	h.stallK, h.stallUntil, h.stallSigned = r.madeLocked(now), now.Add(d), now
}

// ServeStalePlaylists makes the next n playlist answers each end one
// segment before the answer before them, as a lagging CDN edge's do: a
// client sees the media sequence go back.
func (r *Room) ServeStalePlaylists(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hls.stale = n
}

// CorruptSegments makes the next n media segment answers carry one flipped
// byte, so they no longer match the size|crc their playlist gave.
func (r *Room) CorruptSegments(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hls.corrupt = n
}

// EndPlaylistsWithEndList chooses how HLS playlists end with the
// broadcast: true, they keep answering their last window with
// #EXT-X-ENDLIST until the next broadcast; false (the default), they
// answer 404 at once, as the FLV stream does.
func (r *Room) EndPlaylistsWithEndList(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hls.endList = on
}
