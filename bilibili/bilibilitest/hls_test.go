package bilibilitest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"

	"roomrec/recording/flv"
)

// offered lists play info's streams as protocol/format/codec, in order.
func offered(t *testing.T, s *Server, room int64) []string {
	t.Helper()
	var out []string
	for _, st := range playStreams(t, s, room) {
		out = append(out, st.name)
	}
	return out
}

// playStream is one stream of play info with its first URL.
type playStream struct {
	name string // protocol/format/codec
	url  string
	base string
}

func playStreams(t *testing.T, s *Server, room int64) []playStream {
	t.Helper()
	var play struct {
		PlayurlInfo *struct {
			Playurl struct {
				Stream []struct {
					ProtocolName string `json:"protocol_name"`
					Format       []struct {
						FormatName string `json:"format_name"`
						Codec      []struct {
							CodecName string `json:"codec_name"`
							BaseURL   string `json:"base_url"`
							URLInfo   []struct {
								Host  string `json:"host"`
								Extra string `json:"extra"`
							} `json:"url_info"`
						} `json:"codec"`
					} `json:"format"`
				} `json:"stream"`
			} `json:"playurl"`
		} `json:"playurl_info"`
	}
	getData(t, fmt.Sprintf("%s%s?room_id=%d&protocol=0,1&format=0,1,2&codec=0,1&qn=10000&platform=web&ptype=8&dolby=5&panorama=1", s.URL(), PathPlayInfo, room), &play)
	if play.PlayurlInfo == nil {
		return nil
	}
	var out []playStream
	for _, p := range play.PlayurlInfo.Playurl.Stream {
		for _, f := range p.Format {
			for _, c := range f.Codec {
				u := c.URLInfo[0]
				out = append(out, playStream{name: p.ProtocolName + "/" + f.FormatName + "/" + c.CodecName, url: u.Host + c.BaseURL + u.Extra, base: c.BaseURL})
			}
		}
	}
	return out
}

// playURL asks play info for a stream's URL ("http_hls/fmp4/avc"), failing
// if it is not offered.
func playURL(t *testing.T, s *Server, room int64, name string) string {
	t.Helper()
	for _, st := range playStreams(t, s, room) {
		if st.name == name {
			return st.url
		}
	}
	t.Fatalf("play info does not offer %s", name)
	return ""
}

func TestPlayInfoOffers(t *testing.T) {
	tests := []struct {
		name  string
		offer *Offer // nil: the default
		want  string
	}{
		{"default", nil, "http_stream/flv/avc http_hls/ts/avc http_hls/fmp4/avc http_hls/fmp4/hevc"},
		{"FLV only", &OfferFLVOnly, "http_stream/flv/avc"},
		{"HLS only", &OfferHLSOnly, "http_hls/ts/avc http_hls/fmp4/avc http_hls/fmp4/hevc"},
		{"HEVC only", &OfferHEVCOnly, "http_stream/flv/hevc http_hls/ts/hevc http_hls/fmp4/hevc"},
		{"everything", &OfferEverything, "http_stream/flv/avc http_stream/flv/hevc http_hls/ts/avc http_hls/ts/hevc http_hls/fmp4/avc http_hls/fmp4/hevc"},
		{"nothing", &Offer{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Start(t, Config{})
			room := s.AddRoom(RoomConfig{RoomID: 5440, UID: 9617619, Live: true})
			if tt.offer != nil {
				room.SetOffer(*tt.offer)
			}
			if got := strings.Join(offered(t, s, 5440), " "); got != tt.want {
				t.Errorf("offered %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("base URLs as Bilibili's", func(t *testing.T) {
		s := Start(t, Config{})
		room := s.AddRoom(RoomConfig{RoomID: 5440, UID: 9617619, Live: true})
		room.SetOffer(OfferEverything)
		want := map[string]string{
			"http_stream/flv/avc":  "/live-bvc/375028/live_9617619_bs_5440_bluray.flv?",
			"http_stream/flv/hevc": "/live-bvc/375028/live_9617619_bs_5440_prohevc.flv?",
			"http_hls/ts/avc":      "/live-bvc/375028/live_9617619_bs_5440_bluray.m3u8?",
			"http_hls/ts/hevc":     "/live-bvc/375028/live_9617619_bs_5440_prohevc.m3u8?",
			"http_hls/fmp4/avc":    "/live-bvc/375028/live_9617619_bs_5440_bluray/index.m3u8?",
			"http_hls/fmp4/hevc":   "/live-bvc/375028/live_9617619_bs_5440_prohevc/index.m3u8?",
		}
		for _, st := range playStreams(t, s, 5440) {
			if st.base != want[st.name] {
				t.Errorf("%s base_url %q, want %q", st.name, st.base, want[st.name])
			}
			u, _ := url.Parse(st.url)
			if exp, err := strconv.ParseInt(u.Query().Get("expires"), 10, 64); err != nil || time.Until(time.Unix(exp, 0)) < 59*time.Minute {
				t.Errorf("%s expires=%q, want an hour from now", st.name, u.Query().Get("expires"))
			}
			if u.Query().Get("sign") == "" {
				t.Errorf("%s has no sign=", st.name)
			}
		}
	})

	t.Run("OfferOnlyHLS drops FLV from any offer", func(t *testing.T) {
		s := Start(t, Config{})
		room := s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
		room.SetOffer(OfferEverything)
		room.OfferOnlyHLS(true)
		if got := strings.Join(offered(t, s, 5440), " "); strings.Contains(got, "flv") || !strings.Contains(got, "http_hls/fmp4/hevc") {
			t.Errorf("offered %q, want every HLS stream and no FLV", got)
		}
		room.OfferOnlyHLS(false)
		if got := offered(t, s, 5440); len(got) != 6 {
			t.Errorf("offered %q after OfferOnlyHLS(false), want all six again", got)
		}
	})
}

// mediaPlaylist is a parsed media playlist.
type mediaPlaylist struct {
	text     string
	version  int
	sequence int64
	endList  bool
	segments []playlistSegment
}

type playlistSegment struct {
	seq      int64
	uri      string
	mapURI   string // the EXT-X-MAP in force
	duration string
	size     int
	crc      uint32
	aux      []string // the EXT-BILI-AUX fields
}

// parsePlaylist reads a media playlist as a client would, strictly: every
// line must be one the simulator is meant to write.
func parsePlaylist(text string) (*mediaPlaylist, error) {
	pl := &mediaPlaylist{text: text}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) == 0 || lines[0] != "#EXTM3U" {
		return nil, errors.New("no #EXTM3U first")
	}
	var cur playlistSegment
	var mapURI string
	seq := int64(-1)
	for _, line := range lines[1:] {
		tag, val, _ := strings.Cut(line, ":")
		switch {
		case tag == "#EXT-X-VERSION":
			pl.version, _ = strconv.Atoi(val)
		case tag == "#EXT-X-MEDIA-SEQUENCE":
			pl.sequence, _ = strconv.ParseInt(val, 10, 64)
			seq = pl.sequence
		case tag == "#EXT-X-START" || tag == "#EXT-X-TARGETDURATION":
		case tag == "#EXT-X-MAP":
			uri, ok := strings.CutPrefix(val, `URI="`)
			if !ok || !strings.HasSuffix(uri, `"`) {
				return nil, fmt.Errorf("bad MAP %q", line)
			}
			mapURI = strings.TrimSuffix(uri, `"`)
		case tag == "#EXT-BILI-AUX":
			cur.aux = strings.Split(val, "|")
		case tag == "#EXTINF":
			dur, title, _ := strings.Cut(val, ",")
			size, crc, ok := strings.Cut(title, "|")
			n, err1 := strconv.ParseInt(size, 16, 64)
			c, err2 := strconv.ParseUint(crc, 16, 32)
			if !ok || err1 != nil || err2 != nil {
				return nil, fmt.Errorf("bad EXTINF title %q", line)
			}
			cur.duration, cur.size, cur.crc = dur, int(n), uint32(c)
		case line == "#EXT-X-ENDLIST":
			pl.endList = true
		case strings.HasPrefix(line, "#"):
			return nil, fmt.Errorf("unexpected tag %q", line)
		default:
			if seq < 0 || cur.duration == "" {
				return nil, fmt.Errorf("segment %q before its sequence or EXTINF", line)
			}
			cur.seq, cur.uri, cur.mapURI = seq, line, mapURI
			pl.segments = append(pl.segments, cur)
			cur = playlistSegment{}
			seq++
		}
	}
	return pl, nil
}

// get GETs u and returns status and body.
func get(t *testing.T, u string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return resp.StatusCode, b
}

func mustPlaylist(t *testing.T, u string) *mediaPlaylist {
	t.Helper()
	status, body := get(t, u)
	if status != http.StatusOK {
		t.Fatalf("playlist status %d, want 200", status)
	}
	pl, err := parsePlaylist(string(body))
	if err != nil {
		t.Fatalf("playlist: %v\n%s", err, body)
	}
	return pl
}

// resolve resolves a playlist's relative URI as RFC 3986 says, which drops
// the playlist's query.
func resolve(t *testing.T, base, ref string) string {
	t.Helper()
	b, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	r, err := url.Parse(ref)
	if err != nil {
		t.Fatal(err)
	}
	return b.ResolveReference(r).String()
}

// mustSegment fetches a listed segment and checks it against its size|crc.
func mustSegment(t *testing.T, playlistURL string, seg playlistSegment) []byte {
	t.Helper()
	status, body := get(t, resolve(t, playlistURL, seg.uri))
	if status != http.StatusOK {
		t.Fatalf("segment %s: status %d, want 200", seg.uri, status)
	}
	if len(body) != seg.size || crc32.ChecksumIEEE(body) != seg.crc {
		t.Fatalf("segment %s: %d bytes, crc %x; playlist said %d bytes, crc %x", seg.uri, len(body), crc32.ChecksumIEEE(body), seg.size, seg.crc)
	}
	return body
}

func TestPlaylistShape(t *testing.T) {
	s := Start(t, Config{Speed: 10})
	room := s.AddRoom(RoomConfig{RoomID: 5440, UID: 9617619, Live: true})
	room.SetOffer(OfferEverything)
	tests := []struct {
		stream  string
		version int
		uri     string // of a segment, with %d for its sequence number
		header  string // the lines up to the first segment's, with {seq} and {map} for the numbers
	}{
		{"http_hls/fmp4/avc", 7, "%d.m4s", "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-START:TIME-OFFSET=0\n#EXT-X-MEDIA-SEQUENCE:{seq}\n#EXT-X-TARGETDURATION:1\n#EXT-X-MAP:URI=\"h{map}.m4s\"\n#EXT-BILI-AUX:"},
		{"http_hls/fmp4/hevc", 7, "%d.m4s", "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-START:TIME-OFFSET=0\n#EXT-X-MEDIA-SEQUENCE:{seq}\n#EXT-X-TARGETDURATION:1\n#EXT-X-MAP:URI=\"h{map}.m4s\"\n#EXT-BILI-AUX:"},
		{"http_hls/ts/avc", 3, "live_9617619_bs_5440_bluray/%d.ts", "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-START:TIME-OFFSET=0\n#EXT-X-MEDIA-SEQUENCE:{seq}\n#EXT-X-TARGETDURATION:1\n#EXT-BILI-AUX:"},
		{"http_hls/ts/hevc", 3, "live_9617619_bs_5440_prohevc/%d.ts", "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-START:TIME-OFFSET=0\n#EXT-X-MEDIA-SEQUENCE:{seq}\n#EXT-X-TARGETDURATION:1\n#EXT-BILI-AUX:"},
	}
	for _, tt := range tests {
		t.Run(tt.stream, func(t *testing.T) {
			u := playURL(t, s, 5440, tt.stream)
			pl := mustPlaylist(t, u)
			if pl.version != tt.version {
				t.Errorf("version %d, want %d", pl.version, tt.version)
			}
			if n := len(pl.segments); n != hlsWindow {
				t.Fatalf("%d segments, want a window of %d", n, hlsWindow)
			}
			header := strings.NewReplacer("{seq}", fmt.Sprint(pl.sequence), "{map}", fmt.Sprint(room.state().liveStart.Unix())).Replace(tt.header)
			if !strings.HasPrefix(pl.text, header) {
				t.Errorf("playlist starts\n%s\nwant\n%s", pl.text[:min(len(pl.text), len(header))], header)
			}
			if strings.Contains(pl.text, "ENDLIST") {
				t.Error("a live playlist has #EXT-X-ENDLIST")
			}
			var lastStart int64
			for i, seg := range pl.segments {
				if want := fmt.Sprintf(tt.uri, pl.sequence+int64(i)); seg.uri != want {
					t.Errorf("segment %d URI %q, want %q", i, seg.uri, want)
				}
				if seg.duration != "1.00" {
					t.Errorf("segment %d EXTINF %s, want 1.00", i, seg.duration)
				}
				// EXT-BILI-AUX: start ms | K | size | crc, all hex.
				if len(seg.aux) != 4 || seg.aux[1] != "K" || seg.aux[2] != strconv.FormatInt(int64(seg.size), 16) || seg.aux[3] != strconv.FormatUint(uint64(seg.crc), 16) {
					t.Errorf("segment %d EXT-BILI-AUX %q, want start|K|%x|%x", i, seg.aux, seg.size, seg.crc)
				}
				start, err := strconv.ParseInt(seg.aux[0], 16, 64)
				if err != nil || (i > 0 && start-lastStart != 1000) {
					t.Errorf("segment %d starts at %q ms, want 1000 ms after the one before (%d)", i, seg.aux[0], lastStart)
				}
				lastStart = start
				mustSegment(t, u, seg)
			}
		})
	}
}

func TestPlaylistGrowsInRealTime(t *testing.T) {
	s := Start(t, Config{Speed: 10})
	s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
	u := playURL(t, s, 5440, "http_hls/fmp4/avc")
	first := mustPlaylist(t, u)
	time.Sleep(450 * time.Millisecond) // 4.5 s of broadcast
	second := mustPlaylist(t, u)
	if d := second.sequence - first.sequence; d < 3 || d > 10 {
		t.Errorf("media sequence went from %d to %d in 4.5 s of broadcast, want about 4 more", first.sequence, second.sequence)
	}
	// Segments of the first answer that are still listed are the same.
	for _, a := range first.segments {
		for _, b := range second.segments {
			if a.seq == b.seq && (a.crc != b.crc || a.uri != b.uri) {
				t.Errorf("segment %d changed between answers", a.seq)
			}
		}
	}
}

func TestPlaylistAtBroadcastStart(t *testing.T) {
	s := Start(t, Config{Speed: 1})
	room := s.AddRoom(RoomConfig{RoomID: 5440})
	room.GoLive()
	u := playURL(t, s, 5440, "http_hls/fmp4/avc")
	// Nothing is made in the broadcast's first second (which began up to a
	// second ago: live_time has whole seconds); then the playlist grows
	// from one segment.
	var pl *mediaPlaylist
	waitFor(t, 3*time.Second, "first segment", func() bool {
		status, body := get(t, u)
		if status == http.StatusNotFound {
			return false
		}
		var err error
		pl, err = parsePlaylist(string(body))
		return err == nil && len(pl.segments) > 0
	})
	if len(pl.segments) > 2 {
		t.Errorf("%d segments just after going live, want the first one or two", len(pl.segments))
	}
}

// collect polls an HLS playlist and fetches segments until it has n
// consecutive ones, checking each against its size|crc, and returns them
// in order with the playlist entries they came from. At Speed 4 the window
// spans 1.5 s, which a busy machine still keeps up with.
func collect(t *testing.T, u string, n int) ([][]byte, []playlistSegment) {
	t.Helper()
	var data [][]byte
	var entries []playlistSegment
	next := int64(-1)
	deadline := time.Now().Add(20 * time.Second)
	for len(data) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d segments in time", len(data), n)
		}
		pl := mustPlaylist(t, u)
		for _, seg := range pl.segments {
			if next >= 0 && seg.seq < next {
				continue
			}
			if next >= 0 && seg.seq != next {
				t.Fatalf("segment %d missed: the playlist jumped to %d", next, seg.seq)
			}
			data = append(data, mustSegment(t, u, seg))
			entries = append(entries, seg)
			next = seg.seq + 1
			if len(data) == n {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return data, entries
}

// A looped fMP4 stream reads as one: moof numbers rise by one, and every
// track's decode time continues where the last fragment ended, across the
// sample's loop boundaries.
func TestFMP4LoopsContinuously(t *testing.T) {
	for _, codec := range []string{"avc", "hevc"} {
		t.Run(codec, func(t *testing.T) {
			s := Start(t, Config{Speed: 4})
			s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
			u := playURL(t, s, 5440, "http_hls/fmp4/"+codec)
			segs, entries := collect(t, u, 9)

			_, initData := get(t, resolve(t, u, entries[0].mapURI))
			var init fmp4.Init
			if err := init.Unmarshal(bytes.NewReader(initData)); err != nil {
				t.Fatalf("init: %v", err)
			}
			scale := map[int]uint64{}
			for _, tr := range init.Tracks {
				scale[tr.ID] = uint64(tr.TimeScale)
				if _, ok := tr.Codec.(*codecs.H265); codec == "hevc" && tr.Codec.IsVideo() && !ok {
					t.Errorf("video codec %T, want H.265", tr.Codec)
				}
			}
			end := map[int]uint64{}
			var lastSeq uint32
			starts := make([]map[int]uint64, len(segs))
			for i, seg := range segs {
				if !bytes.HasPrefix(seg[4:], []byte("moof")) {
					t.Fatalf("segment %d starts with %q, want moof", i, seg[4:8])
				}
				var parts fmp4.Parts
				if err := parts.Unmarshal(seg); err != nil {
					t.Fatalf("segment %d: %v", i, err)
				}
				if len(parts) < 2 {
					t.Errorf("segment %d has %d fragments, want several as Bilibili's", i, len(parts))
				}
				starts[i] = map[int]uint64{}
				for _, p := range parts {
					if lastSeq != 0 && p.SequenceNumber != lastSeq+1 {
						t.Errorf("segment %d: mfhd %d after %d, want +1", i, p.SequenceNumber, lastSeq)
					}
					lastSeq = p.SequenceNumber
					for _, tr := range p.Tracks {
						if e, ok := end[tr.ID]; ok && tr.BaseTime != e {
							t.Fatalf("segment %d track %d: tfdt %d, want %d where the last fragment ended", i, tr.ID, tr.BaseTime, e)
						}
						if _, ok := starts[i][tr.ID]; !ok {
							starts[i][tr.ID] = tr.BaseTime
						}
						end[tr.ID] = tr.BaseTime
						for _, smp := range tr.Samples {
							end[tr.ID] += uint64(smp.Duration)
						}
					}
				}
			}
			// Nine segments of a four-segment loop: segment 4 is segment 0
			// again, four seconds later in every track.
			n, _ := loadHLSSamples()
			if !bytes.Equal(payloads(t, segs[0]), payloads(t, segs[n.segments])) {
				t.Fatalf("segment %d does not repeat segment 0's media; the loop is not %d segments", n.segments, n.segments)
			}
			for id, s0 := range starts[0] {
				if got := starts[n.segments][id] - s0; got != uint64(n.segments)*scale[id] {
					t.Errorf("track %d: the repeat starts %d ticks later, want %d s", id, got, n.segments)
				}
			}
		})
	}
}

// payloads concatenates a segment's sample data.
func payloads(t *testing.T, seg []byte) []byte {
	var parts fmp4.Parts
	if err := parts.Unmarshal(seg); err != nil {
		t.Fatal(err)
	}
	var out []byte
	for _, p := range parts {
		for _, tr := range p.Tracks {
			for _, s := range tr.Samples {
				out = append(out, s.Payload...)
			}
		}
	}
	return out
}

// A looped TS stream reads as one transport stream: PTS and DTS rise
// across segment and loop boundaries, and continuity counters run on.
func TestTSLoopsContinuously(t *testing.T) {
	for _, codec := range []string{"avc", "hevc"} {
		t.Run(codec, func(t *testing.T) {
			s := Start(t, Config{Speed: 4})
			s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
			s.Room(5440).SetOffer(OfferEverything)
			u := playURL(t, s, 5440, "http_hls/ts/"+codec)
			segs, _ := collect(t, u, 9)
			stream := bytes.Join(segs, nil)

			// Continuity counters, checked by hand: one more per packet
			// with a payload, per PID, across every boundary.
			cc := map[uint16]byte{}
			for p := 0; p < len(stream); p += tsPacket {
				pkt := stream[p:]
				pid := uint16(pkt[1]&0x1f)<<8 | uint16(pkt[2])
				if pkt[3]&0x10 == 0 {
					continue
				}
				if last, ok := cc[pid]; ok && pkt[3]&0x0f != (last+1)&0x0f {
					t.Fatalf("PID %d: continuity counter %d after %d at byte %d", pid, pkt[3]&0x0f, last, p)
				}
				cc[pid] = pkt[3] & 0x0f
			}

			r := &mpegts.Reader{R: bytes.NewReader(stream)}
			if err := r.Initialize(); err != nil {
				t.Fatal(err)
			}
			r.OnDecodeError(func(err error) { t.Errorf("decode error: %v", err) })
			var video, audio []int64
			for _, tr := range r.Tracks() {
				switch tr.Codec.(type) {
				case *mpegts.CodecH264:
					r.OnDataH264(tr, func(pts, dts int64, au [][]byte) error {
						if len(video) == 0 && !h264.IsRandomAccess(au) {
							t.Error("the first video access unit is not a keyframe")
						}
						video = append(video, dts)
						return nil
					})
				case *mpegts.CodecH265:
					r.OnDataH265(tr, func(pts, dts int64, au [][]byte) error {
						if len(video) == 0 && !h265.IsRandomAccess(au) {
							t.Error("the first video access unit is not a keyframe")
						}
						video = append(video, dts)
						return nil
					})
				case *mpegts.CodecMPEG4Audio:
					r.OnDataMPEG4Audio(tr, func(pts int64, aus [][]byte) error {
						audio = append(audio, pts)
						return nil
					})
				default:
					t.Errorf("unexpected track %T", tr.Codec)
				}
			}
			for {
				if err := r.Read(); err != nil {
					if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "EOF") {
						t.Fatal(err)
					}
					break
				}
			}
			// ffmpeg puts several AAC frames in one PES, about three a second.
			for name, ts := range map[string][]int64{"video DTS": video, "audio PES PTS": audio} {
				if len(ts) < 20 {
					t.Fatalf("%d %s, want 9 s of them", len(ts), name)
				}
				for i := 1; i < len(ts); i++ {
					if ts[i] <= ts[i-1] {
						t.Fatalf("%s %d after %d, want rising", name, ts[i], ts[i-1])
					}
				}
				if span := ts[len(ts)-1] - ts[0]; span < 8*90000 || span > 9*90000 {
					t.Errorf("%s span %d ticks, want about 9 s", name, span)
				}
			}
		})
	}
}

// ffprobePackets runs ffprobe over a file and returns, per stream index,
// the packets' dts, failing the test on anything ffprobe reports.
func ffprobePackets(t *testing.T, path string, format ...string) map[string][]float64 {
	t.Helper()
	args := append(append([]string{"-v", "error"}, format...), "-show_entries", "packet=stream_index,dts_time", "-of", "csv=p=0", path)
	cmd := exec.Command("ffprobe", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("ffprobe: %v\n%s", err, stderr.String())
	}
	got := map[string][]float64{}
	for _, line := range strings.Fields(string(out)) {
		fields := strings.Split(line, ",") // TS packets may have more
		if len(fields) < 2 {
			t.Fatalf("ffprobe row %q", line)
		}
		stream := fields[0]
		v, err := strconv.ParseFloat(fields[1], 64)
		if err != nil {
			t.Fatalf("ffprobe row %q", line)
		}
		got[stream] = append(got[stream], v)
	}
	return got
}

func TestFFprobeReadsServedHLS(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Skip("ffprobe not installed")
	}
	for _, stream := range []string{"http_hls/fmp4/avc", "http_hls/fmp4/hevc", "http_hls/ts/avc", "http_hls/ts/hevc"} {
		t.Run(stream, func(t *testing.T) {
			s := Start(t, Config{Speed: 4})
			room := s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
			room.SetOffer(OfferEverything)
			u := playURL(t, s, 5440, stream)
			segs, entries := collect(t, u, 10) // two and a half loops
			var file []byte
			if strings.Contains(stream, "fmp4") {
				_, file = get(t, resolve(t, u, entries[0].mapURI))
			}
			for _, seg := range segs {
				file = append(file, seg...)
			}
			path := filepath.Join(t.TempDir(), "live")
			if err := os.WriteFile(path, file, 0o644); err != nil {
				t.Fatal(err)
			}
			packets := ffprobePackets(t, path)
			if len(packets["0"]) < 280 || len(packets["1"]) < 280 {
				t.Errorf("%d and %d packets, want 10 s of video (300) and audio (312)", len(packets["0"]), len(packets["1"]))
			}
			for stream, dts := range packets {
				for i := 1; i < len(dts); i++ {
					if dts[i] <= dts[i-1] {
						t.Fatalf("stream %s dts %.3f after %.3f, want rising", stream, dts[i], dts[i-1])
					}
				}
				if span := dts[len(dts)-1] - dts[0]; span < 9.5 || span > 10.5 {
					t.Errorf("stream %s spans %.2f s, want about 10", stream, span)
				}
			}
		})
	}
}

// With VideoFiller, every video frame of an fMP4 stream carries the
// filler: an independent reader (mediacommon) finds every video sample that
// much larger and the audio untouched, the playlist's size|crc match (as
// collect checks), and ffprobe decodes the stream without complaint.
func TestFMP4WithFillerDecodes(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Skip("ffprobe not installed")
	}
	const filler = 30000
	for _, codec := range []string{"avc", "hevc"} {
		t.Run(codec, func(t *testing.T) {
			plain := Start(t, Config{Speed: 4})
			s := Start(t, Config{Speed: 4, VideoFiller: filler})
			for _, srv := range []*Server{plain, s} {
				srv.AddRoom(RoomConfig{RoomID: 5440, Live: true})
			}
			sizes := func(srv *Server) (video, audio []int, file []byte) {
				u := playURL(t, srv, 5440, "http_hls/fmp4/"+codec)
				segs, entries := collect(t, u, 4) // one loop
				_, file = get(t, resolve(t, u, entries[0].mapURI))
				var init fmp4.Init
				if err := init.Unmarshal(bytes.NewReader(file)); err != nil {
					t.Fatalf("init: %v", err)
				}
				isVideo := map[int]bool{}
				for _, tr := range init.Tracks {
					isVideo[tr.ID] = tr.Codec.IsVideo()
				}
				for i, seg := range segs {
					var parts fmp4.Parts
					if err := parts.Unmarshal(seg); err != nil {
						t.Fatalf("segment %d: %v", i, err)
					}
					for _, p := range parts {
						for _, tr := range p.Tracks {
							for _, smp := range tr.Samples {
								if isVideo[tr.ID] {
									video = append(video, len(smp.Payload))
								} else {
									audio = append(audio, len(smp.Payload))
								}
							}
						}
					}
				}
				for _, seg := range segs {
					file = append(file, seg...)
				}
				// Four segments are one loop, whichever the window
				// started at: compare the loops' samples as sets.
				slices.Sort(video)
				slices.Sort(audio)
				return video, audio, file
			}
			video0, audio0, _ := sizes(plain)
			video, audio, file := sizes(s)
			if len(video) != len(video0) || len(video) < 100 {
				t.Fatalf("%d video samples padded, %d plain; want the same loop", len(video), len(video0))
			}
			for i := range video {
				if video[i] != video0[i]+filler {
					t.Fatalf("video sample of %d bytes, want %d plus %d of filler", video[i], video0[i], filler)
				}
			}
			if fmt.Sprint(audio) != fmt.Sprint(audio0) {
				t.Errorf("audio samples changed: %v, want %v", audio, audio0)
			}
			path := filepath.Join(t.TempDir(), "live.mp4")
			if err := os.WriteFile(path, file, 0o644); err != nil {
				t.Fatal(err)
			}
			if packets := ffprobePackets(t, path); len(packets["0"]) < 100 || len(packets["1"]) < 100 {
				t.Errorf("ffprobe read %d and %d packets, want 4 s of video and audio", len(packets["0"]), len(packets["1"]))
			}
		})
	}
}

func TestHLSURLsExpire(t *testing.T) {
	s := Start(t, Config{Speed: 10})
	room := s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
	room.SetURLLifetime(time.Second)
	u := playURL(t, s, 5440, "http_hls/fmp4/avc")
	flvURL := playURL(t, s, 5440, "http_stream/flv/avc")
	pl := mustPlaylist(t, u)
	seg := pl.segments[len(pl.segments)-1]
	bare := resolve(t, u, seg.uri)
	signed := bare + "?" + strings.SplitN(u, "?", 2)[1]
	if status, _ := get(t, signed); status != http.StatusOK {
		t.Errorf("signed segment before expiry: status %d, want 200", status)
	}
	time.Sleep(1100 * time.Millisecond)
	for name, target := range map[string]string{"playlist": u, "signed segment": signed, "FLV": flvURL} {
		if status, _ := get(t, target); status != http.StatusForbidden {
			t.Errorf("%s after expiry: status %d, want 403", name, status)
		}
	}
	// A segment URI resolved from the playlist carries no query; the CDN
	// serves it.
	if status, _ := get(t, bare); status != http.StatusOK {
		t.Errorf("bare segment after expiry: status %d, want 200", status)
	}
	// Tampering with expires= breaks the signature.
	fresh := playURL(t, s, 5440, "http_hls/fmp4/avc")
	q, _ := url.Parse(fresh)
	v := q.Query()
	v.Set("expires", strconv.FormatInt(time.Now().Add(24*time.Hour).Unix(), 10))
	q.RawQuery = v.Encode()
	if status, _ := get(t, q.String()); status != http.StatusForbidden {
		t.Errorf("playlist with a changed expires=: status %d, want 403", status)
	}
	if status, _ := get(t, strings.SplitN(fresh, "?", 2)[0]); status != http.StatusForbidden {
		t.Errorf("playlist without its query: status %d, want 403", status)
	}
	mustPlaylist(t, fresh)

	room.SetURLLifetime(time.Hour)
	fresh = playURL(t, s, 5440, "http_hls/fmp4/avc")
	mustPlaylist(t, fresh)
	room.ExpireURLs()
	if status, _ := get(t, fresh); status != http.StatusForbidden {
		t.Errorf("playlist after ExpireURLs: status %d, want 403", status)
	}
	mustPlaylist(t, playURL(t, s, 5440, "http_hls/fmp4/avc"))
}

func TestPlaylistNotFoundAndStall(t *testing.T) {
	s := Start(t, Config{Speed: 10})
	room := s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
	u := playURL(t, s, 5440, "http_hls/ts/avc")
	pl := mustPlaylist(t, u)

	room.PlaylistNotFoundFor(300 * time.Millisecond)
	if status, _ := get(t, u); status != http.StatusNotFound {
		t.Errorf("playlist during PlaylistNotFoundFor: status %d, want 404", status)
	}
	mustSegment(t, u, pl.segments[len(pl.segments)-1]) // segments are still there
	time.Sleep(350 * time.Millisecond)
	mustPlaylist(t, u)

	room.StallPlaylist(500 * time.Millisecond)
	stalled := mustPlaylist(t, u)
	time.Sleep(300 * time.Millisecond) // 3 s of broadcast
	if again := mustPlaylist(t, u); again.text != stalled.text {
		t.Errorf("a stalled playlist changed:\n%s\nthen\n%s", stalled.text, again.text)
	}
	time.Sleep(300 * time.Millisecond)
	if after := mustPlaylist(t, u); after.sequence < stalled.sequence+4 {
		t.Errorf("after the stall the window starts at %d, want the live position (at least %d)", after.sequence, stalled.sequence+4)
	}

	// StallStream and StreamNotFoundFor apply to playlists too.
	room.StreamNotFoundFor(200 * time.Millisecond)
	if status, _ := get(t, u); status != http.StatusNotFound {
		t.Errorf("playlist during StreamNotFoundFor: status %d, want 404", status)
	}
	time.Sleep(250 * time.Millisecond)
	room.StallStream(400 * time.Millisecond)
	stalled = mustPlaylist(t, u)
	time.Sleep(250 * time.Millisecond)
	if again := mustPlaylist(t, u); again.sequence != stalled.sequence {
		t.Errorf("playlist moved from %d to %d during StallStream", stalled.sequence, again.sequence)
	}
}

// A node's stall holds the playlists of the URLs handed out before it;
// fresh play info answers the live window meanwhile.
func TestStallPlaylistNode(t *testing.T) {
	s := Start(t, Config{Speed: 10})
	room := s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
	old := playURL(t, s, 5440, "http_hls/fmp4/avc")
	room.StallPlaylistNode(time.Minute)
	stalled := mustPlaylist(t, old)
	time.Sleep(300 * time.Millisecond) // 3 s of broadcast
	if again := mustPlaylist(t, old); again.text != stalled.text {
		t.Errorf("the stalled node's playlist changed:\n%s\nthen\n%s", stalled.text, again.text)
	}
	if fresh := mustPlaylist(t, playURL(t, s, 5440, "http_hls/fmp4/avc")); fresh.sequence < stalled.sequence+2 {
		t.Errorf("a fresh URL's window starts at %d, want the live position (at least %d)", fresh.sequence, stalled.sequence+2)
	}
}

func TestChangeResolutionChangesInit(t *testing.T) {
	s := Start(t, Config{Speed: 10})
	room := s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
	u := playURL(t, s, 5440, "http_hls/fmp4/avc")
	hevcURL := playURL(t, s, 5440, "http_hls/fmp4/hevc")
	before := mustPlaylist(t, u)
	hevcBefore := mustPlaylist(t, hevcURL)
	oldMap := before.segments[0].mapURI
	room.ChangeResolution()
	var after *mediaPlaylist
	waitFor(t, 3*time.Second, "new init listed", func() bool {
		after = mustPlaylist(t, u)
		return after.segments[len(after.segments)-1].mapURI != oldMap
	})
	// While the window holds both, each segment names its own init.
	if after.segments[0].mapURI == oldMap && strings.Count(after.text, "#EXT-X-MAP") != 2 {
		t.Errorf("window spanning the change has %d MAP lines, want 2:\n%s", strings.Count(after.text, "#EXT-X-MAP"), after.text)
	}
	newMap := after.segments[len(after.segments)-1].mapURI
	width := func(mapURI string) int {
		status, data := get(t, resolve(t, u, mapURI))
		if status != http.StatusOK {
			t.Fatalf("init %s: status %d", mapURI, status)
		}
		var init fmp4.Init
		if err := init.Unmarshal(bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		for _, tr := range init.Tracks {
			if c, ok := tr.Codec.(*codecs.H264); ok {
				var sps h264.SPS
				if err := sps.Unmarshal(c.SPS); err != nil {
					t.Fatal(err)
				}
				return sps.Width()
			}
		}
		t.Fatal("no H.264 track")
		return 0
	}
	if a, b := width(oldMap), width(newMap); a != 320 || b != 480 {
		t.Errorf("inits are %d and %d wide, want 320 then 480", a, b)
	}
	// The first segment under the new init starts with a keyframe and
	// continues the old one's time.
	for i, seg := range after.segments {
		if seg.mapURI == newMap && i > 0 {
			prev, _ := strconv.ParseInt(after.segments[i-1].aux[0], 16, 64)
			cur, _ := strconv.ParseInt(seg.aux[0], 16, 64)
			if cur-prev != 1000 || seg.aux[1] != "K" {
				t.Errorf("first segment under the new init: start %d after %d, key %s; want 1000 ms later, K", cur, prev, seg.aux[1])
			}
			break
		}
	}
	// HEVC has one sample: its init stays.
	if hevcAfter := mustPlaylist(t, hevcURL); hevcAfter.segments[0].mapURI != hevcBefore.segments[0].mapURI {
		t.Errorf("HEVC init changed from %s to %s", hevcBefore.segments[0].mapURI, hevcAfter.segments[0].mapURI)
	}
}

func TestCorruptSegments(t *testing.T) {
	s := Start(t, Config{Speed: 10})
	room := s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
	u := playURL(t, s, 5440, "http_hls/fmp4/avc")
	pl := mustPlaylist(t, u)
	seg := pl.segments[len(pl.segments)-1]
	room.CorruptSegments(2)
	for i := range 2 {
		_, body := get(t, resolve(t, u, seg.uri))
		if len(body) != seg.size || crc32.ChecksumIEEE(body) == seg.crc {
			t.Errorf("corrupt answer %d: %d bytes, crc %x; want %d bytes and a crc other than %x", i, len(body), crc32.ChecksumIEEE(body), seg.size, seg.crc)
		}
	}
	mustSegment(t, u, seg)
}

func TestCutStreamBreaksASegment(t *testing.T) {
	s := Start(t, Config{Speed: 10})
	room := s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
	u := playURL(t, s, 5440, "http_hls/ts/avc")
	pl := mustPlaylist(t, u)
	seg := pl.segments[len(pl.segments)-1]
	room.CutStream()
	resp, err := http.Get(resolve(t, u, seg.uri))
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Error("segment after CutStream read cleanly, want it broken off")
	}
	mustSegment(t, u, seg)
}

func TestStalePlaylist(t *testing.T) {
	s := Start(t, Config{Speed: 1})
	room := s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
	u := playURL(t, s, 5440, "http_hls/fmp4/avc")
	pl := mustPlaylist(t, u)
	room.ServeStalePlaylists(1)
	stale := mustPlaylist(t, u)
	last := func(p *mediaPlaylist) int64 { return p.segments[len(p.segments)-1].seq }
	if last(stale) != last(pl)-1 {
		t.Errorf("stale answer ends at %d, the one before at %d; want one back", last(stale), last(pl))
	}
	if again := mustPlaylist(t, u); last(again) < last(pl) {
		t.Errorf("the answer after the stale one ends at %d, want back at %d or later", last(again), last(pl))
	}
}

func TestHLSAfterEndLive(t *testing.T) {
	for _, endList := range []bool{false, true} {
		t.Run(fmt.Sprintf("endlist %v", endList), func(t *testing.T) {
			s := Start(t, Config{Speed: 10})
			room := s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
			room.EndPlaylistsWithEndList(endList)
			u := playURL(t, s, 5440, "http_hls/fmp4/avc")
			pl := mustPlaylist(t, u)
			room.EndLive()
			if streams := playStreams(t, s, 5440); streams != nil {
				t.Errorf("play info after EndLive lists %d streams, want playurl_info null", len(streams))
			}
			status, body := get(t, u)
			if !endList {
				if status != http.StatusNotFound {
					t.Errorf("playlist after EndLive: status %d, want 404", status)
				}
			} else {
				ended, err := parsePlaylist(string(body))
				if status != http.StatusOK || err != nil || !ended.endList {
					t.Fatalf("playlist after EndLive: status %d, %v, want one with #EXT-X-ENDLIST:\n%s", status, err, body)
				}
				time.Sleep(200 * time.Millisecond)
				if again := mustPlaylist(t, u); again.text != ended.text {
					t.Error("an ended playlist still changes")
				}
			}
			// What was made is still served for a while.
			mustSegment(t, u, pl.segments[len(pl.segments)-1])
			room.GoLive()
			waitFor(t, 2*time.Second, "playlist of the next broadcast", func() bool {
				status, body := get(t, playURL(t, s, 5440, "http_hls/fmp4/avc"))
				return status == http.StatusOK && !strings.Contains(string(body), "ENDLIST")
			})
		})
	}
}

func TestHLSRequestCounters(t *testing.T) {
	s := Start(t, Config{Speed: 4})
	room := s.AddRoom(RoomConfig{RoomID: 5440})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := room.WaitSegmentRequest(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("with no request: err %v, want the context's deadline", err)
	}
	room.GoLive()
	u := playURL(t, s, 5440, "http_hls/fmp4/avc")
	before := time.Now()
	var pl *mediaPlaylist
	waitFor(t, 2*time.Second, "a segment listed", func() bool {
		status, body := get(t, u)
		pl, _ = parsePlaylist(string(body))
		return status == http.StatusOK && pl != nil && len(pl.segments) > 0
	})
	get(t, resolve(t, u, pl.segments[0].mapURI))
	mustSegment(t, u, pl.segments[0])
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	at, err := room.WaitSegmentRequest(ctx, 1)
	if err != nil || at.Before(before) {
		t.Errorf("WaitSegmentRequest = %v, %v; want the request just made", at, err)
	}
	if room.PlaylistRequests() < 1 || room.InitRequests() != 1 || room.SegmentRequests() != 1 {
		t.Errorf("counters: %d playlists, %d inits, %d segments; want some, 1, 1", room.PlaylistRequests(), room.InitRequests(), room.SegmentRequests())
	}
	if n := room.StreamRequests(); n != 0 {
		t.Errorf("StreamRequests = %d after HLS only, want 0 (it counts FLV)", n)
	}
}

// The HEVC FLV stream is framed as Bilibili's CDN frames it: codec id 12,
// the AVC layout, hvcC as the sequence header. ffprobe 5.1 cannot read
// that, so the test parses hvcC itself, checks its SPS with mediacommon,
// and has ffprobe decode the frames as a raw HEVC stream.
func TestHEVCFLV(t *testing.T) {
	for _, filler := range []int{0, 3000} {
		t.Run(fmt.Sprintf("filler %d", filler), func(t *testing.T) { testHEVCFLV(t, filler) })
	}
}

func testHEVCFLV(t *testing.T, filler int) {
	s := Start(t, Config{Speed: 10, VideoFiller: filler})
	room := s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
	room.SetOffer(OfferHEVCOnly)
	resp := openStream(t, playURL(t, s, 5440, "http_stream/flv/hevc"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	fs := &flvStream{resp: resp, r: flv.NewReader(resp.Body)}
	if _, err := fs.r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if script := fs.mustNext(t); script.Type != flv.TagScript || !bytes.Contains(script.Data, []byte("videocodecid")) {
		t.Errorf("first tag %s, want onMetaData", script.Type)
	}
	seq := fs.mustNext(t)
	if seq.Type != flv.TagVideo || seq.Data[0] != 0x1c || seq.Data[1] != 0 || !seq.IsSequenceHeader() {
		t.Fatalf("second tag % x, want an HEVC (codec id 12) sequence header", seq.Data[:min(5, len(seq.Data))])
	}
	if aac := fs.mustNext(t); aac.Type != flv.TagAudio || !aac.IsSequenceHeader() {
		t.Errorf("third tag %s, want the AAC sequence header", aac.Type)
	}
	params := hvcCParameterSets(t, seq.Data[5:])
	var sps h265.SPS
	if err := sps.Unmarshal(params[h265.NALUType_SPS_NUT]); err != nil {
		t.Fatalf("hvcC SPS: %v", err)
	}
	if sps.Width() != 320 || sps.Height() != 180 {
		t.Errorf("SPS says %dx%d, want 320x180", sps.Width(), sps.Height())
	}

	// 3 s of frames as Annex B, parameter sets first.
	var annexB []byte
	for _, typ := range []h265.NALUType{h265.NALUType_VPS_NUT, h265.NALUType_SPS_NUT, h265.NALUType_PPS_NUT} {
		annexB = append(append(annexB, 0, 0, 0, 1), params[typ]...)
	}
	var tracks trackState
	frames := 0
	for frames < 90 {
		tag := fs.mustNext(t)
		tracks.check(t, tag)
		if tag.Type != flv.TagVideo {
			continue
		}
		if tag.Data[0]&0x0f != 12 || tag.Data[1] != 1 {
			t.Fatalf("video tag % x, want HEVC frames", tag.Data[:5])
		}
		if frames == 0 && tag.Data[0]>>4 != 1 {
			t.Error("first frame is not a keyframe")
		}
		if filler > 0 && len(tag.Data) < filler {
			t.Fatalf("video tag of %d bytes, want the %d bytes of filler added", len(tag.Data), filler)
		}
		for nal := tag.Data[5:]; len(nal) > 0; {
			n := int(binary.BigEndian.Uint32(nal))
			if n > len(nal)-4 {
				t.Fatalf("NAL of %d bytes in %d", n, len(nal)-4)
			}
			annexB = append(append(annexB, 0, 0, 0, 1), nal[4:4+n]...)
			nal = nal[4+n:]
		}
		frames++
	}
	if _, err := exec.LookPath("ffprobe"); err != nil {
		return
	}
	path := filepath.Join(t.TempDir(), "live.hevc")
	if err := os.WriteFile(path, annexB, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ffprobe", "-v", "error", "-f", "hevc", "-count_frames", "-show_entries", "stream=width,height,nb_read_frames", "-of", "csv=p=0", path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("ffprobe: %v\n%s", err, stderr.String())
	}
	if got := strings.TrimSpace(string(out)); got != "320,180,90" {
		t.Errorf("ffprobe read %q, want 320,180,90", got)
	}
}

// hvcCParameterSets returns the first NAL unit of each type an
// HEVCDecoderConfigurationRecord lists.
func hvcCParameterSets(t *testing.T, rec []byte) map[h265.NALUType][]byte {
	t.Helper()
	if len(rec) < 23 || rec[0] != 1 {
		t.Fatalf("hvcC of %d bytes, version %d", len(rec), rec[0])
	}
	if rec[21]&3 != 3 {
		t.Errorf("hvcC NAL length size %d, want 4", rec[21]&3+1)
	}
	out := map[h265.NALUType][]byte{}
	p := rec[23:]
	for range int(rec[22]) {
		if len(p) < 3 {
			t.Fatal("hvcC array truncated")
		}
		typ, n := h265.NALUType(p[0]&0x3f), int(binary.BigEndian.Uint16(p[1:]))
		p = p[3:]
		for range n {
			if len(p) < 2 || int(binary.BigEndian.Uint16(p)) > len(p)-2 {
				t.Fatal("hvcC NAL unit truncated")
			}
			l := int(binary.BigEndian.Uint16(p))
			if out[typ] == nil {
				out[typ] = p[2 : 2+l]
			}
			p = p[2+l:]
		}
	}
	for _, typ := range []h265.NALUType{h265.NALUType_VPS_NUT, h265.NALUType_SPS_NUT, h265.NALUType_PPS_NUT} {
		if out[typ] == nil {
			t.Fatalf("hvcC lacks NAL type %d", typ)
		}
	}
	return out
}

func TestParseOffer(t *testing.T) {
	tests := []struct {
		spec    string
		want    Offer
		wantErr bool
	}{
		{"default", OfferDefault, false},
		{"hls", OfferHLSOnly, false},
		{"hevc", OfferHEVCOnly, false},
		{"all", OfferEverything, false},
		{"none", Offer{}, false},
		{"flv/avc,fmp4/hevc", Offer{FLV: Codecs{AVC: true}, HLSfMP4: Codecs{HEVC: true}}, false},
		{"flv, ts/hevc", Offer{FLV: Codecs{AVC: true}, HLSTS: Codecs{HEVC: true}}, false},
		{"", Offer{}, true},
		{"dash/avc", Offer{}, true},
		{"ts/vp9", Offer{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := ParseOffer(tt.spec)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseOffer(%q) = %v, %v; want %v, error %v", tt.spec, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestHLSControlAPI(t *testing.T) {
	s := Start(t, Config{Speed: 10})
	s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
	base := s.URL() + "/_sim/rooms/5440/"
	act := func(action string, want int) {
		t.Helper()
		if status, reply := post(t, base+action, ""); status != want {
			t.Fatalf("%s: status %d (%s), want %d", action, status, reply, want)
		}
	}
	act("offer?streams=hls", 200)
	if got := strings.Join(offered(t, s, 5440), " "); got != "http_hls/ts/avc http_hls/fmp4/avc http_hls/fmp4/hevc" {
		t.Errorf("offer?streams=hls: offered %q", got)
	}
	act("offer?streams=bogus", 400)
	act("offer?streams=flv/hevc,fmp4/avc", 200)
	if got := strings.Join(offered(t, s, 5440), " "); got != "http_stream/flv/hevc http_hls/fmp4/avc" {
		t.Errorf("offer?streams=flv/hevc,fmp4/avc: offered %q", got)
	}
	u := playURL(t, s, 5440, "http_hls/fmp4/avc")
	pl := mustPlaylist(t, u)

	act("corrupt?n=1", 200)
	if _, body := get(t, resolve(t, u, pl.segments[5].uri)); crc32.ChecksumIEEE(body) == pl.segments[5].crc {
		t.Error("segment after corrupt matches its crc")
	}
	act("stale?n=1", 200)
	if stale := mustPlaylist(t, u); stale.segments[5].seq != pl.segments[5].seq-1 {
		t.Errorf("playlist after stale ends at %d, the one before at %d; want one back", stale.segments[5].seq, pl.segments[5].seq)
	}
	act("playliststall?ms=600", 200)
	stalled := mustPlaylist(t, u)
	time.Sleep(200 * time.Millisecond)
	if again := mustPlaylist(t, u); again.sequence != stalled.sequence {
		t.Errorf("playlist moved from %d to %d during playliststall", stalled.sequence, again.sequence)
	}
	act("playlist404?ms=60000", 200)
	if status, _ := get(t, u); status != http.StatusNotFound {
		t.Errorf("playlist after playlist404: status %d, want 404", status)
	}
	act("playlist404?ms=0", 200)
	act("expire", 200)
	if status, _ := get(t, u); status != http.StatusForbidden {
		t.Errorf("playlist after expire: status %d, want 403", status)
	}
	act("lifetime?ms=100", 200)
	short := playURL(t, s, 5440, "http_hls/fmp4/avc")
	time.Sleep(150 * time.Millisecond)
	if status, _ := get(t, short); status != http.StatusForbidden {
		t.Errorf("playlist past lifetime?ms=100: status %d, want 403", status)
	}
	act("lifetime?ms=3600000", 200)
	act("endlist", 200)
	u = playURL(t, s, 5440, "http_hls/fmp4/avc")
	act("end", 200)
	if ended := mustPlaylist(t, u); !ended.endList {
		t.Error("playlist after endlist and end has no #EXT-X-ENDLIST")
	}

	resp, err := http.Get(s.URL() + "/_sim/rooms")
	if err != nil {
		t.Fatal(err)
	}
	list, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(list), "offers flv/hevc fmp4/avc") || !strings.Contains(string(list), "segment request(s)") {
		t.Errorf("room list %q, want the offer and HLS request counts", list)
	}
}

func TestJumpTimestampsInHLS(t *testing.T) {
	s := Start(t, Config{Speed: 10})
	room := s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
	u := playURL(t, s, 5440, "http_hls/ts/avc")
	before := mustPlaylist(t, u)
	room.JumpTimestamps(time.Minute)
	var after *mediaPlaylist
	waitFor(t, 3*time.Second, "a segment after the jump", func() bool {
		after = mustPlaylist(t, u)
		return after.segments[len(after.segments)-1].seq > before.segments[len(before.segments)-1].seq+1
	})
	// Segments listed before the jump are unchanged; later ones start a
	// minute later than they would have.
	jumps := 0
	for i := 1; i < len(after.segments); i++ {
		prev, _ := strconv.ParseInt(after.segments[i-1].aux[0], 16, 64)
		cur, _ := strconv.ParseInt(after.segments[i].aux[0], 16, 64)
		switch cur - prev {
		case 1000:
		case 61000:
			jumps++
		default:
			t.Errorf("segment %d starts %d ms after the one before, want 1000 or 61000", after.segments[i].seq, cur-prev)
		}
	}
	for _, a := range before.segments {
		for _, b := range after.segments {
			if a.seq == b.seq && a.crc != b.crc {
				t.Errorf("segment %d changed after the jump", a.seq)
			}
		}
	}
	if jumps != 1 {
		t.Errorf("%d jumps in the window, want 1:\n%s", jumps, after.text)
	}
}

// Two resolution changes before the encoder makes another segment cancel
// out: no segment is made from the other sample, so the init never changes.
func TestChangeResolutionTwiceWithinASegment(t *testing.T) {
	s := Start(t, Config{Speed: 1})
	room := s.AddRoom(RoomConfig{RoomID: 5440, Live: true})
	u := playURL(t, s, 5440, "http_hls/fmp4/avc")
	before := mustPlaylist(t, u)
	room.ChangeResolution()
	room.ChangeResolution()
	time.Sleep(1200 * time.Millisecond)
	after := mustPlaylist(t, u)
	if after.sequence == before.sequence {
		t.Fatal("no new segment in 1.2 s")
	}
	if n := strings.Count(after.text, "#EXT-X-MAP"); n != 1 || after.segments[0].mapURI != before.segments[0].mapURI {
		t.Errorf("%d MAP lines, first %s (was %s); want the one init throughout", n, after.segments[0].mapURI, before.segments[0].mapURI)
	}
}
