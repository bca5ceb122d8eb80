package bilibili

import (
	"fmt"
	"testing"
)

func TestPick(t *testing.T) {
	stream := func(format, codec string, qn int) Stream {
		protocol := "http_hls"
		if format == "flv" {
			protocol = "http_stream"
		}
		return Stream{Protocol: protocol, Format: format, Codec: codec, Qn: qn, URLs: []string{"https://cn-example.bilivideo.com/" + format}}
	}
	tests := []struct {
		name    string
		streams []Stream
		order   []StreamKind
		want    string // kind and qn, or "" for none
	}{
		{"flv first at one quality", []Stream{stream("ts", "avc", 10000), stream("fmp4", "avc", 10000), stream("flv", "avc", 10000)}, DefaultStreamOrder, "flv-avc 10000"},
		{"quality before format", []Stream{stream("flv", "avc", 250), stream("fmp4", "hevc", 10000)}, DefaultStreamOrder, "fmp4-hevc 10000"},
		{"h264 before hevc", []Stream{stream("fmp4", "hevc", 10000), stream("ts", "avc", 10000)}, DefaultStreamOrder, "ts-avc 10000"},
		{"the user's order", []Stream{stream("flv", "avc", 10000), stream("fmp4", "hevc", 10000)}, []StreamKind{{"fmp4", "hevc"}, {"flv", "avc"}}, "fmp4-hevc 10000"},
		{"kinds left out are never picked", []Stream{stream("fmp4", "hevc", 10000)}, []StreamKind{{"flv", "avc"}}, ""},
		{"unknown codec", []Stream{stream("fmp4", "av1", 10000)}, DefaultStreamOrder, ""},
		{"nothing offered", nil, DefaultStreamOrder, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ok := PlayInfo{Streams: tt.streams}.Pick(tt.order)
			got := ""
			if ok {
				got = fmt.Sprintf("%s %d", s.Kind(), s.Qn)
			}
			if got != tt.want {
				t.Errorf("Pick = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseStreamOrder(t *testing.T) {
	order, err := ParseStreamOrder(" fmp4-hevc, flv-avc ")
	if err != nil || len(order) != 2 || order[0] != (StreamKind{"fmp4", "hevc"}) || order[1] != (StreamKind{"flv", "avc"}) {
		t.Errorf("ParseStreamOrder = %v, %v", order, err)
	}
	def, err := ParseStreamOrder(kindList(DefaultStreamOrder))
	if err != nil || len(def) != len(DefaultStreamOrder) {
		t.Errorf("the default does not read back: %v, %v", def, err)
	}
	for _, bad := range []string{"", "flv", "mp4-avc", "flv-av1", "flv-avc,flv-avc", "flv-avc,,ts-avc"} {
		if _, err := ParseStreamOrder(bad); err == nil {
			t.Errorf("ParseStreamOrder(%q) accepted", bad)
		}
	}
}
