package hls

import (
	"encoding/base64"
	"errors"
	"hash/crc32"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The playlists below have the shapes Bilibili serves, from real ones that
// other recorders quote (their query strings, which carry signatures, are
// shortened to the parameters that matter):
//
//   - bilibiliFMP4: Xinrea/bili-shadowreplay, src-tauri/src/recorder/bilibili.rs,
//     test parse_fmp4_playlist (2025, room unknown), first six segments.
//   - bilibiliNoAux: an older shape without EXT-BILI-AUX, quoted in a
//     comment of a TypeScript BliveM3u8Parser (2023, h1680092604.m4s).
//   - bilibiliMaster: qydysky/bili_danmu, Reply/F/parseM3u8/test.m3u8, which a
//     CDN served instead of a media playlist; two of its qualities, two
//     CDNs each.
const bilibiliFMP4 = `#EXTM3U
#EXT-X-VERSION:7
#EXT-X-START:TIME-OFFSET=0
#EXT-X-MEDIA-SEQUENCE:323066244
#EXT-X-TARGETDURATION:1
#EXT-X-MAP:URI="h1758715459.m4s"
#EXT-BILI-AUX:97d350|K|7d1e3|fe1425ab
#EXTINF:1.00,7d1e3|fe1425ab
323066244.m4s
#EXT-BILI-AUX:97d706|N|757d4|c9094969
#EXTINF:1.00,757d4|c9094969
323066245.m4s
#EXT-BILI-AUX:97daee|N|8223d|f307566a
#EXTINF:1.00,8223d|f307566a
323066246.m4s
#EXT-BILI-AUX:97dee7|N|775cc|428d567
#EXTINF:1.00,775cc|428d567
323066247.m4s
#EXT-BILI-AUX:97e2df|N|10410|9a62fe61
#EXTINF:0.17,10410|9a62fe61
323066248.m4s
#EXT-BILI-AUX:97e397|K|679d2|8fbee7df
#EXTINF:1.00,679d2|8fbee7df
323066249.m4s
`

const bilibiliNoAux = `#EXTM3U
#EXT-X-VERSION:7
#EXT-X-START:TIME-OFFSET=0
#EXT-X-MEDIA-SEQUENCE:39156177
#EXT-X-TARGETDURATION:1
#EXT-X-MAP:URI="h1680092604.m4s"
#EXTINF:1.00,422ce|b020c7c5
39156177.m4s
#EXTINF:1.00,25487|c317aef6
39156178.m4s
#EXTINF:1.00,166bc|f4f85984
39156179.m4s
`

const bilibiliMaster = `#EXTM3U
#EXT-X-CONTENT-STEERING:SERVER-URI="reserved",PATHWAY-ID="https://d1--cn-gotcha209.bilivideo.com",BILI-PATHWAY-PRIORITY="https://d1--cn-gotcha209.bilivideo.com,https://cn-hnzz-cm-01-11.bilivideo.com",BILI-CTR-MODE=1,BILI-TTL=150
#EXT-X-STREAM-INF:BANDWIDTH=1187465,RESOLUTION=1280x720,CODECS="avc1.640028,mp4a.40.2",BILI-ORDER=0,BILI-DISPLAY="超清",BILI-QN=250,PATHWAY-ID="https://d1--cn-gotcha209.bilivideo.com"
https://d1--cn-gotcha209.bilivideo.com/live-bvc/833265/live_194484313_8775758_2500/index.m3u8?expires=1737129387&qn=250&order=1
#EXT-X-STREAM-INF:BANDWIDTH=1187465,RESOLUTION=1280x720,CODECS="avc1.640028,mp4a.40.2",BILI-ORDER=0,BILI-DISPLAY="超清",BILI-QN=250,PATHWAY-ID="https://cn-hnzz-cm-01-11.bilivideo.com"
https://cn-hnzz-cm-01-11.bilivideo.com/live-bvc/833265/live_194484313_8775758_2500/index.m3u8?expires=1737129387&qn=250&order=2
#EXT-X-STREAM-INF:BANDWIDTH=2108696,RESOLUTION=1920x1080,CODECS="avc1.640032,mp4a.40.2",BILI-ORDER=2,BILI-DISPLAY="原画",BILI-QN=10000,PATHWAY-ID="https://d1--cn-gotcha209.bilivideo.com"
https://d1--cn-gotcha209.bilivideo.com/live-bvc/192693/live_194484313_8775758_bluray/index.m3u8?expires=1737129387&qn=10000&order=1
#EXT-X-STREAM-INF:BANDWIDTH=2108696,RESOLUTION=1920x1080,CODECS="avc1.640032,mp4a.40.2",BILI-ORDER=2,BILI-DISPLAY="原画",BILI-QN=10000,PATHWAY-ID="https://cn-hnzz-cm-01-09.bilivideo.com"
https://cn-hnzz-cm-01-09.bilivideo.com/live-bvc/192693/live_194484313_8775758_bluray/index.m3u8?expires=1737129387&qn=10000&order=2
`

// playlistURL is where the media playlists above are fetched from: the
// shape of getRoomPlayInfo's host + base_url + extra.
const playlistURL = "https://d1--cn-gotcha208.bilivideo.com/live-bvc/375028/live_9617619_bs_5440_bluray/index.m3u8?expires=1700000000&qn=10000&sign=abc"

const signed = "?expires=1700000000&qn=10000&sign=abc"
const dir = "https://d1--cn-gotcha208.bilivideo.com/live-bvc/375028/live_9617619_bs_5440_bluray/"

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestParseBilibiliMediaPlaylist(t *testing.T) {
	p, err := Parse(strings.NewReader(bilibiliFMP4), mustURL(t, playlistURL))
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != 7 || p.TargetDuration != time.Second || p.MediaSequence != 323066244 || p.EndList || p.IsMaster() {
		t.Errorf("header = version %d, target %v, sequence %d, endlist %v, master %v; want 7, 1s, 323066244, false, false",
			p.Version, p.TargetDuration, p.MediaSequence, p.EndList, p.IsMaster())
	}
	if len(p.Segments) != 6 {
		t.Fatalf("got %d segments, want 6", len(p.Segments))
	}
	want0 := Segment{
		Seq: 323066244, URI: dir + "323066244.m4s" + signed, Duration: time.Second,
		Map:  dir + "h1758715459.m4s" + signed,
		Size: 0x7d1e3, CRC32: 0xfe1425ab, HasCheck: true,
		Aux: "97d350|K|7d1e3|fe1425ab", HasAux: true, Start: 0x97d350 * time.Millisecond, Keyframe: true,
	}
	if p.Segments[0] != want0 {
		t.Errorf("segment 0 = %+v, want %+v", p.Segments[0], want0)
	}
	short := p.Segments[4]
	if short.Seq != 323066248 || short.Duration != 170*time.Millisecond || short.Keyframe || short.CRC32 != 0x9a62fe61 {
		t.Errorf("segment 4 = %+v, want seq 323066248, 170ms, not a keyframe, crc 9a62fe61", short)
	}
	if !p.Segments[5].Keyframe {
		t.Error("segment 5 (K) is not marked as starting with a keyframe")
	}
	// The aux start times step by the segment durations.
	if d := p.Segments[5].Start - p.Segments[4].Start; d != 184*time.Millisecond {
		t.Errorf("aux start step over the 0.17 s segment = %v, want 184ms", d)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		body string
		base string
		want func(t *testing.T, p *Playlist)
	}{
		{
			name: "older playlist without EXT-BILI-AUX",
			body: bilibiliNoAux,
			base: playlistURL,
			want: func(t *testing.T, p *Playlist) {
				s := p.Segments[2]
				if s.Seq != 39156179 || !s.HasCheck || s.Size != 0x166bc || s.CRC32 != 0xf4f85984 || s.HasAux || s.Aux != "" {
					t.Errorf("segment 2 = %+v", s)
				}
			},
		},
		{
			name: "ffmpeg's TS playlist: no check in the title, ENDLIST",
			body: "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n" +
				"#EXTINF:1.000000,\nh264_0.ts\n#EXTINF:0.966667,\nh264_1.ts\n#EXT-X-ENDLIST\n",
			base: "http://127.0.0.1:8080/live/index.m3u8",
			want: func(t *testing.T, p *Playlist) {
				if !p.EndList || len(p.Segments) != 2 {
					t.Fatalf("endlist %v, %d segments; want true, 2", p.EndList, len(p.Segments))
				}
				s := p.Segments[1]
				if s.HasCheck || s.Duration != 966667*time.Microsecond || s.URI != "http://127.0.0.1:8080/live/h264_1.ts" || s.Map != "" {
					t.Errorf("segment 1 = %+v", s)
				}
			},
		},
		{
			name: "a new init mid-playlist applies from there on",
			body: "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:10\n#EXT-X-MAP:URI=\"h1700000000.m4s\"\n#EXTINF:1.00,\n10.m4s\n" +
				"#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"h1700000100.m4s\"\n#EXTINF:1.00,\n11.m4s\n#EXTINF:1.00,\n12.m4s\n",
			base: "https://cdn.example/live/index.m3u8?expires=1",
			want: func(t *testing.T, p *Playlist) {
				got := []string{p.Segments[0].Map, p.Segments[1].Map, p.Segments[2].Map}
				want := []string{"https://cdn.example/live/h1700000000.m4s?expires=1",
					"https://cdn.example/live/h1700000100.m4s?expires=1", "https://cdn.example/live/h1700000100.m4s?expires=1"}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("maps = %q, want %q", got, want)
				}
				if p.Segments[0].Discontinuity || !p.Segments[1].Discontinuity || p.Segments[2].Discontinuity {
					t.Errorf("discontinuity flags = %v %v %v, want false true false",
						p.Segments[0].Discontinuity, p.Segments[1].Discontinuity, p.Segments[2].Discontinuity)
				}
			},
		},
		{
			name: "URI forms",
			body: "#EXTM3U\n#EXTINF:1,\n1.ts\n#EXTINF:1,\n/other/2.ts\n#EXTINF:1,\n3.ts?own=1\n" +
				"#EXTINF:1,\nhttps://elsewhere.example/4.ts\n#EXTINF:1,\nhttps://elsewhere.example/5.ts?sig=2\n#EXTINF:1,\n../up/6.ts#frag\n",
			base: "https://cdn.example/live/a/index.m3u8?expires=9&sign=s",
			want: func(t *testing.T, p *Playlist) {
				var got []string
				for _, s := range p.Segments {
					got = append(got, s.URI)
				}
				want := []string{
					"https://cdn.example/live/a/1.ts?expires=9&sign=s",
					"https://cdn.example/other/2.ts?expires=9&sign=s",
					"https://cdn.example/live/a/3.ts?own=1",
					"https://elsewhere.example/4.ts",
					"https://elsewhere.example/5.ts?sig=2",
					"https://cdn.example/live/up/6.ts?expires=9&sign=s",
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("URIs:\n got %q\nwant %q", got, want)
				}
			},
		},
		{
			name: "no base: URIs as written",
			body: "#EXTM3U\n#EXT-X-MAP:URI=\"h1.m4s\"\n#EXTINF:1,\n1.m4s\n",
			want: func(t *testing.T, p *Playlist) {
				if s := p.Segments[0]; s.URI != "1.m4s" || s.Map != "h1.m4s" {
					t.Errorf("segment = %+v", s)
				}
			},
		},
		{
			name: "master playlist: best variant first, CDN order kept within a quality",
			body: bilibiliMaster,
			base: playlistURL,
			want: func(t *testing.T, p *Playlist) {
				if !p.IsMaster() || len(p.Segments) != 0 {
					t.Fatalf("master %v with %d segments, want a master with none", p.IsMaster(), len(p.Segments))
				}
				var got []string
				for _, v := range p.Variants {
					got = append(got, v.URI[:strings.IndexByte(v.URI, '?')]+" "+v.URI[strings.LastIndexByte(v.URI, '&'):])
				}
				want := []string{
					"https://d1--cn-gotcha209.bilivideo.com/live-bvc/192693/live_194484313_8775758_bluray/index.m3u8 &order=1",
					"https://cn-hnzz-cm-01-09.bilivideo.com/live-bvc/192693/live_194484313_8775758_bluray/index.m3u8 &order=2",
					"https://d1--cn-gotcha209.bilivideo.com/live-bvc/833265/live_194484313_8775758_2500/index.m3u8 &order=1",
					"https://cn-hnzz-cm-01-11.bilivideo.com/live-bvc/833265/live_194484313_8775758_2500/index.m3u8 &order=2",
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("variants:\n got %q\nwant %q", got, want)
				}
				if v := p.Variants[0]; v.QN != 10000 || v.Bandwidth != 2108696 || v.Codecs != "avc1.640032,mp4a.40.2" {
					t.Errorf("best variant = %+v", v)
				}
			},
		},
		{
			name: "master playlist without BILI-QN: by bandwidth",
			body: "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100\nlow/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=900,RESOLUTION=1920x1080\nhigh/index.m3u8\n",
			base: "https://cdn.example/master.m3u8?expires=5",
			want: func(t *testing.T, p *Playlist) {
				if got := p.Variants[0].URI; got != "https://cdn.example/high/index.m3u8?expires=5" {
					t.Errorf("best variant = %q", got)
				}
			},
		},
		{
			name: "unknown tags and comments are ignored; CRLF lines",
			body: "#EXTM3U\r\n# a comment\r\n#EXT-X-PROGRAM-DATE-TIME:2024-01-01T00:00:00Z\r\n#EXT-X-NEW-THING:A=1\r\n#EXTINF:2.5,hello\r\n7.ts\r\n",
			base: "https://cdn.example/i.m3u8",
			want: func(t *testing.T, p *Playlist) {
				if len(p.Segments) != 1 || p.Segments[0].Duration != 2500*time.Millisecond || p.Segments[0].HasCheck {
					t.Errorf("segments = %+v", p.Segments)
				}
			},
		},
		{
			name: "base64-encoded body",
			body: base64.StdEncoding.EncodeToString([]byte(bilibiliNoAux)),
			base: playlistURL,
			want: func(t *testing.T, p *Playlist) {
				if len(p.Segments) != 3 || p.MediaSequence != 39156177 {
					t.Errorf("got %d segments from %d", len(p.Segments), p.MediaSequence)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var base *url.URL
			if tt.base != "" {
				base = mustURL(t, tt.base)
			}
			p, err := Parse(strings.NewReader(tt.body), base)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range p.Segments {
				if s.Seq != p.MediaSequence+uint64(i) {
					t.Errorf("segment %d has seq %d, want %d", i, s.Seq, p.MediaSequence+uint64(i))
				}
			}
			tt.want(t, p)
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		want error
	}{
		{"HTML error page", "<html><body>403 Forbidden</body></html>", ErrNotPlaylist},
		{"empty body", "", ErrNotPlaylist},
		{"JSON", `{"code":-403}`, ErrNotPlaylist},
		{"bad media sequence", "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:abc\n", ErrMalformed},
		{"media sequence after a segment", "#EXTM3U\n#EXTINF:1,\n1.ts\n#EXT-X-MEDIA-SEQUENCE:4\n", ErrMalformed},
		{"bad duration", "#EXTM3U\n#EXTINF:one,\n1.ts\n", ErrMalformed},
		{"negative duration", "#EXTM3U\n#EXTINF:-1,\n1.ts\n", ErrMalformed},
		{"truncated after EXTINF", "#EXTM3U\n#EXTINF:1.00,7d1e3|fe1425ab\n1.m4s\n#EXT-BILI-AUX:97d350|K|7d1e3|fe1425ab\n#EXTINF:1.00,", ErrMalformed},
		{"map without URI", "#EXTM3U\n#EXT-X-MAP:BYTERANGE=\"1@0\"\n", ErrMalformed},
		{"stream inf without URI", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n", ErrMalformed},
		{"unterminated quote", "#EXTM3U\n#EXT-X-MAP:URI=\"h1.m4s\n", ErrMalformed},
		{"too long", "#EXTM3U\n" + strings.Repeat("#", MaxPlaylistBytes), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(strings.NewReader(tt.body), nil)
			if !errors.Is(err, tt.want) {
				t.Errorf("Parse = %+v, %v; want %v", p, err, tt.want)
			}
		})
	}
}

func TestParseAuxFallsBackForTheCheck(t *testing.T) {
	// Only EXT-BILI-AUX carries the size and CRC: they are used.
	body := "#EXTM3U\n#EXT-BILI-AUX:1250faff|K|1cdf5|a9a7bf95\n#EXTINF:1.00,\n1788796260.m4s\n" +
		"#EXT-BILI-AUX:not|the|usual\n#EXTINF:1.00,\n1788796261.m4s\n"
	p, err := Parse(strings.NewReader(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := p.Segments[0]; !s.HasCheck || s.Size != 0x1cdf5 || s.CRC32 != 0xa9a7bf95 || s.Start != 0x1250faff*time.Millisecond {
		t.Errorf("segment 0 = %+v", s)
	}
	if s := p.Segments[1]; s.HasCheck || s.HasAux || s.Aux != "not|the|usual" {
		t.Errorf("segment 1 = %+v, want the raw aux and no check", s)
	}
}

func TestVerify(t *testing.T) {
	data := []byte("moof mdat and the rest of a one-second segment")
	good := Segment{Seq: 5, Size: int64(len(data)), CRC32: crc32.ChecksumIEEE(data), HasCheck: true}
	tests := []struct {
		name    string
		seg     Segment
		data    []byte
		wantErr bool
	}{
		{"matches", good, data, false},
		{"cut short", good, data[:10], true},
		{"one byte changed", good, append([]byte("M"), data[1:]...), true},
		{"no check declared", Segment{Seq: 5}, []byte("anything"), false},
		{"empty segment declared empty", Segment{HasCheck: true, CRC32: 0}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.seg.Verify(tt.data)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Verify = %v, want error %v", err, tt.wantErr)
			}
			if err == nil {
				return
			}
			var ve *VerifyError
			if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ve) || ve.Seq != 5 || ve.GotSize != int64(len(tt.data)) {
				t.Errorf("Verify = %#v, want a *VerifyError for seq 5 matching ErrCorrupt", err)
			}
		})
	}
}

func TestParseRealCheckMatchesItsBytes(t *testing.T) {
	// The check is of the whole segment file: a segment built here, listed
	// with its own size and CRC in Bilibili's format, verifies.
	seg := []byte(strings.Repeat("\x00\x00\x01\x48moof", 100))
	body := "#EXTM3U\n#EXTINF:1.00," + strconv.FormatInt(int64(len(seg)), 16) + "|" +
		strconv.FormatUint(uint64(crc32.ChecksumIEEE(seg)), 16) + "\n1.m4s\n"
	p, err := Parse(strings.NewReader(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Segments[0].Verify(seg); err != nil {
		t.Error(err)
	}
}
