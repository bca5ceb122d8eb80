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
	Streams []Stream // best first: http_stream+flv+avc, then other FLV, then HLS
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

// FLV returns the preferred FLV-over-HTTP stream, the one roomrec records.
func (p PlayInfo) FLV() (Stream, bool) {
	for _, s := range p.Streams {
		if s.Protocol == "http_stream" && s.Format == "flv" {
			return s, true
		}
	}
	return Stream{}, false
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
	env, err := c.get(ctx, c.ep.Live, "/xlive/web-room/v2/index/getRoomPlayInfo", query, endpoint)
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
	slices.SortStableFunc(info.Streams, func(a, b Stream) int { return streamRank(a) - streamRank(b) })
	if len(info.Streams) == 0 {
		return PlayInfo{}, fmt.Errorf("play info for room %d: %w", roomID, ErrNotLive)
	}
	return info, nil
}

// streamRank orders streams by how well roomrec records them: FLV over HTTP
// with H.264 is what the repair pipeline knows best.
func streamRank(s Stream) int {
	rank := 0
	if s.Protocol != "http_stream" {
		rank += 4
	}
	if s.Format != "flv" {
		rank += 2
	}
	if s.Codec != "avc" {
		rank++
	}
	return rank
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
