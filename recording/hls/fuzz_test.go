package hls

import (
	"bytes"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// format writes p back as playlist text, for tests: what Parse reads from
// it must be p again.
func format(p *Playlist) string {
	var b strings.Builder
	b.WriteString("#EXTM3U\n")
	if p.Version != 0 {
		fmt.Fprintf(&b, "#EXT-X-VERSION:%d\n", p.Version)
	}
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%s\n", seconds(p.TargetDuration))
	fmt.Fprintf(&b, "#EXT-X-MEDIA-SEQUENCE:%d\n", p.MediaSequence)
	mapURI := ""
	for _, s := range p.Segments {
		if s.Map != mapURI {
			fmt.Fprintf(&b, "#EXT-X-MAP:URI=\"%s\"\n", s.Map)
			mapURI = s.Map
		}
		if s.Discontinuity {
			b.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		if s.Aux != "" {
			fmt.Fprintf(&b, "#EXT-BILI-AUX:%s\n", s.Aux)
		}
		title := ""
		if s.HasCheck {
			title = fmt.Sprintf("%x|%x", s.Size, s.CRC32)
		}
		fmt.Fprintf(&b, "#EXTINF:%s,%s\n%s\n", seconds(s.Duration), title, s.URI)
	}
	for _, v := range p.Variants {
		fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d,BILI-QN=%d,CODECS=\"%s\"\n%s\n", v.Bandwidth, v.QN, v.Codecs, v.URI)
	}
	if p.EndList {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	return b.String()
}

func seconds(d time.Duration) string {
	return fmt.Sprintf("%d.%09d", d/time.Second, d%time.Second)
}

// FuzzParse checks that Parse never panics, numbers segments from the media
// sequence, gives segments whose Verify takes any input, and reads back what
// format writes of its result: the same playlist, with URIs resolved once
// resolving to themselves.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{bilibiliFMP4, bilibiliNoAux, bilibiliMaster,
		"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:18446744073709551614\n#EXTINF:1,\na\n#EXTINF:1,\nb\n#EXTINF:1,\nc\n",
		"#EXTM3U\n#EXT-X-MAP:URI=\"h1.m4s\",BYTERANGE=\"10@0\"\n#EXT-X-DISCONTINUITY\n#EXTINF:0.5,ff|0\n../x.ts?a=b\n#EXT-X-ENDLIST\n",
	} {
		f.Add([]byte(seed), true)
	}
	base, _ := url.Parse(playlistURL)
	zeros := make([]byte, 1<<16)
	f.Fuzz(func(t *testing.T, body []byte, withBase bool) {
		b := base
		if !withBase {
			b = nil
		}
		p, err := Parse(bytes.NewReader(body), b)
		if err != nil {
			return
		}
		for i, s := range p.Segments {
			if s.Seq != p.MediaSequence+uint64(i) {
				t.Fatalf("segment %d has seq %d, media sequence %d", i, s.Seq, p.MediaSequence)
			}
			if s.Duration < 0 || s.Size < 0 {
				t.Fatalf("segment %d: duration %v size %d", i, s.Duration, s.Size)
			}
			n := min(s.Size, int64(len(zeros)))
			if err := s.Verify(zeros[:n]); s.HasCheck && n != s.Size && err == nil {
				t.Fatalf("segment %d: Verify accepted %d bytes for a declared %d", i, n, s.Size)
			}
		}
		again, err := Parse(strings.NewReader(format(p)), b)
		if err != nil {
			t.Fatalf("reading back what was parsed: %v\n%s", err, format(p))
		}
		if !reflect.DeepEqual(again, p) {
			t.Fatalf("read back differs:\n got %+v\nwant %+v\n%s", again, p, format(p))
		}
	})
}
