package bilibili

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// PlayInfo is where a live room's stream can be fetched from.
type PlayInfo struct {
	Streams []Stream // in Bilibili's order
}

// Stream is one protocol, format and codec of a room's stream at one
// quality, with every host that serves it.
type Stream struct {
	Protocol string // "http_stream" (FLV over HTTP) or "http_hls"
	Format   string // "flv", "ts" or "fmp4"
	Codec    string // "avc" or "hevc"
	Qn       int    // the quality actually served, which may not be the one asked for
	AcceptQn []int  // the qualities this room offers
	URLs     []string
}

// QualityName returns the name the website shows for a qn: 原画 for
// 10000, 蓝光 for 400, and so on; a qn it does not know is shown as its
// number.
func QualityName(qn int) string {
	switch qn {
	case 30000:
		return "杜比"
	case 20000:
		return "4K"
	case 10000:
		return "原画"
	case 400:
		return "蓝光"
	case 250:
		return "超清"
	case 150:
		return "高清"
	case 80:
		return "流畅"
	}
	return fmt.Sprintf("qn %d", qn)
}

// Kind returns the stream's format and codec.
func (s Stream) Kind() StreamKind { return StreamKind{Format: s.Format, Codec: s.Codec} }

// StreamKind is a stream's format on the wire and its video codec. The
// format implies the protocol: flv comes over http_stream, fmp4 and ts
// over http_hls.
type StreamKind struct {
	Format string // "flv", "fmp4" or "ts"
	Codec  string // "avc" (H.264) or "hevc" (H.265)
}

// String returns the kind as ParseStreamOrder reads it: "fmp4-hevc".
func (k StreamKind) String() string { return k.Format + "-" + k.Codec }

// DefaultStreamOrder is the preference among streams of the same quality:
// H.264 before HEVC, since more players and tools read it, and within a
// codec FLV before fMP4 before TS, since one long HTTP response loses less
// at a reconnect than a playlist of segments.
var DefaultStreamOrder = []StreamKind{
	{"flv", "avc"}, {"fmp4", "avc"}, {"ts", "avc"},
	{"flv", "hevc"}, {"fmp4", "hevc"}, {"ts", "hevc"},
}

// ParseStreamOrder reads a comma-separated preference like
// "fmp4-hevc,flv-avc". Kinds it leaves out are never recorded. It returns
// an error naming the first word it does not know.
func ParseStreamOrder(s string) ([]StreamKind, error) {
	var order []StreamKind
	for _, word := range strings.Split(s, ",") {
		word = strings.TrimSpace(word)
		format, codec, _ := strings.Cut(word, "-")
		k := StreamKind{Format: format, Codec: codec}
		if !slices.Contains(DefaultStreamOrder, k) {
			return nil, fmt.Errorf("%q is not a stream kind (one of %s)", word, kindList(DefaultStreamOrder))
		}
		if slices.Contains(order, k) {
			return nil, fmt.Errorf("%q is named twice", word)
		}
		order = append(order, k)
	}
	return order, nil
}

func kindList(kinds []StreamKind) string {
	words := make([]string, len(kinds))
	for i, k := range kinds {
		words[i] = k.String()
	}
	return strings.Join(words, ", ")
}

// Pick returns the stream to record: the highest quality served among the
// kinds in order, and at that quality the kind order names first. It
// reports false when no stream is of a kind in order.
func (p PlayInfo) Pick(order []StreamKind) (Stream, bool) {
	best, bestRank := Stream{}, -1
	for _, s := range p.Streams {
		rank := slices.Index(order, s.Kind())
		if rank < 0 || len(s.URLs) == 0 {
			continue
		}
		if bestRank < 0 || s.Qn > best.Qn || (s.Qn == best.Qn && rank < bestRank) {
			best, bestRank = s, rank
		}
	}
	return best, bestRank >= 0
}

// FLV returns the preferred FLV-over-HTTP stream.
func (p PlayInfo) FLV() (Stream, bool) {
	return p.Pick([]StreamKind{{"flv", "avc"}, {"flv", "hevc"}})
}

// Formats lists the protocol/format/codec of every stream offered, for
// logs and messages: "http_hls/fmp4/hevc, http_hls/ts/avc".
func (p PlayInfo) Formats() string {
	var out []string
	for _, s := range p.Streams {
		out = append(out, s.Protocol+"/"+s.Format+"/"+s.Codec)
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// PlayInfo returns the stream URLs of a live room at quality qn (10000 is
// the original). It returns an error wrapping ErrNotLive when the room has no
// stream, and ErrRoomNotFound for an unknown room.
func (c *Client) PlayInfo(ctx context.Context, roomID int64, qn int) (PlayInfo, error) {
	const endpoint = "getRoomPlayInfo"
	query := "room_id=" + strconv.FormatInt(roomID, 10) +
		"&protocol=0,1&format=0,1,2&codec=0,1&qn=" + strconv.Itoa(qn) +
		"&platform=web&ptype=8&dolby=5&panorama=1"
	env, err := c.get(ctx, hostLive, "/xlive/web-room/v2/index/getRoomPlayInfo", query, endpoint)
	if err != nil {
		return PlayInfo{}, fmt.Errorf("play info for room %d: %w", roomID, err)
	}
	var data struct {
		PlayurlInfo json.RawMessage `json:"playurl_info"`
	}
	if err := decodeData(env, endpoint, &data); err != nil {
		return PlayInfo{}, err
	}
	if rawOrNull(data.PlayurlInfo) {
		return PlayInfo{}, fmt.Errorf("play info for room %d: %w", roomID, ErrNotLive)
	}
	var pi struct {
		Playurl struct {
			Stream []struct {
				ProtocolName string `json:"protocol_name"`
				Format       []struct {
					FormatName string `json:"format_name"`
					Codec      []struct {
						CodecName string `json:"codec_name"`
						CurrentQn int    `json:"current_qn"`
						AcceptQn  []int  `json:"accept_qn"`
						BaseURL   string `json:"base_url"`
						URLInfo   []struct {
							Host  string `json:"host"`
							Extra string `json:"extra"`
						} `json:"url_info"`
					} `json:"codec"`
				} `json:"format"`
			} `json:"stream"`
		} `json:"playurl"`
	}
	if err := json.Unmarshal(data.PlayurlInfo, &pi); err != nil {
		return PlayInfo{}, fmt.Errorf("%s: %w: %v", endpoint, ErrProtocol, err)
	}
	var info PlayInfo
	for _, p := range pi.Playurl.Stream {
		for _, f := range p.Format {
			for _, cd := range f.Codec {
				s := Stream{Protocol: p.ProtocolName, Format: f.FormatName, Codec: cd.CodecName, Qn: cd.CurrentQn, AcceptQn: cd.AcceptQn}
				for _, u := range cd.URLInfo {
					s.URLs = append(s.URLs, u.Host+cd.BaseURL+u.Extra)
				}
				// P2P edge hosts (.mcdn.) often refuse or stall; keep them
				// as the last resort. The sort is stable, so Bilibili's own
				// order holds within each group.
				slices.SortStableFunc(s.URLs, func(a, b string) int { return boolRank(isMCDN(a)) - boolRank(isMCDN(b)) })
				if len(s.URLs) > 0 {
					info.Streams = append(info.Streams, s)
				}
			}
		}
	}
	if len(info.Streams) == 0 {
		return PlayInfo{}, fmt.Errorf("play info for room %d: %w", roomID, ErrNotLive)
	}
	return info, nil
}

func isMCDN(u string) bool {
	host := u
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	if i := strings.IndexByte(host, '/'); i >= 0 {
		host = host[:i]
	}
	return strings.Contains(host, ".mcdn.")
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}
