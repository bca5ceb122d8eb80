package bilibilitest

import (
	"embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"sync"

	"roomrec/recording/flv"
)

// The HLS samples (testdata/make-hls-samples.sh): a 4 s loop cut into 1 s
// segments, each starting on a keyframe, in every container and codec
// Bilibili serves.
//
//go:embed testdata/hls
var hlsFiles embed.FS

// fmp4Sample is one fMP4 sample: its init segment and its loop of segments.
type fmp4Sample struct {
	init     *mp4Init
	segments []*fmp4Segment
	video    uint32            // the video track's id
	loop     map[uint32]uint64 // per track: ticks one loop lasts
}

// tsSample is one MPEG-TS sample's loop of segments.
type tsSample struct {
	segments  []*tsSegment
	durations []float64      // seconds, per segment
	packets   map[uint16]int // per PID: payload packets in one loop
}

// hlsSampleSet is every sample the HLS streams and the HEVC FLV stream are
// made from. Each stream has two variants, for ChangeResolution; a codec
// with one sample uses it for both.
type hlsSampleSet struct {
	fmp4     map[string][2]*fmp4Sample // by codec ("avc", "hevc")
	ts       map[string][2]*tsSample
	flvHEVC  *sample
	segments int // per loop, the same in every sample
	moofs    int // most moof boxes in one segment, for mfhd numbering
}

var (
	hlsOnce    sync.Once
	hlsSamples *hlsSampleSet
	hlsErr     error
)

func loadHLSSamples() (*hlsSampleSet, error) {
	hlsOnce.Do(func() {
		hlsSamples, hlsErr = parseHLSSamples()
		if hlsErr != nil {
			hlsErr = fmt.Errorf("bilibilitest: HLS samples: %w", hlsErr)
		}
	})
	return hlsSamples, hlsErr
}

func parseHLSSamples() (*hlsSampleSet, error) {
	set := &hlsSampleSet{fmp4: map[string][2]*fmp4Sample{}, ts: map[string][2]*tsSample{}}
	fm := map[string]*fmp4Sample{}
	for _, name := range []string{"avc_a", "avc_b", "hevc_a"} {
		smp, err := loadFMP4Sample("testdata/hls/" + name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		fm[name] = smp
	}
	set.fmp4["avc"] = [2]*fmp4Sample{fm["avc_a"], fm["avc_b"]}
	set.fmp4["hevc"] = [2]*fmp4Sample{fm["hevc_a"], fm["hevc_a"]}
	for _, codec := range []string{"avc", "hevc"} {
		smp, err := loadTSSample("testdata/hls/" + codec + "_a_ts")
		if err != nil {
			return nil, fmt.Errorf("%s TS: %w", codec, err)
		}
		set.ts[codec] = [2]*tsSample{smp, smp}
	}
	set.segments = len(fm["avc_a"].segments)
	for _, smp := range fm {
		if len(smp.segments) != set.segments {
			return nil, errors.New("fMP4 samples differ in length")
		}
		for _, seg := range smp.segments {
			set.moofs = max(set.moofs, len(seg.mfhd))
		}
	}
	for _, smp := range set.ts {
		if len(smp[0].segments) != set.segments {
			return nil, errors.New("TS and fMP4 samples differ in length")
		}
	}
	var err error
	if set.flvHEVC, err = flvFromFMP4(fm["hevc_a"]); err != nil {
		return nil, fmt.Errorf("HEVC FLV: %w", err)
	}
	return set, nil
}

// padFMP4 adds a filler-data NAL unit of n bytes to every video frame of
// every fMP4 sample (Config.VideoFiller) and returns the padded segments
// by the segments they pad.
func (set *hlsSampleSet) padFMP4(n int) (map[*fmp4Segment]*fmp4Segment, error) {
	out := map[*fmp4Segment]*fmp4Segment{}
	for codec, smps := range set.fmp4 {
		filler := appendFiller(nil, n, codec)
		for _, smp := range smps {
			if _, done := out[smp.segments[0]]; done {
				continue // a codec with one sample lists it twice
			}
			// appendFiller writes a 4-byte length, as the samples'
			// NAL units have.
			if size, err := smp.init.tracks[smp.video].nalLengthSize(); err != nil || size != 4 {
				return nil, fmt.Errorf("%s sample: NAL units with %d-byte lengths (%v), want 4", codec, size, err)
			}
			for i, seg := range smp.segments {
				p, err := seg.padded(smp.video, filler)
				if err != nil {
					return nil, fmt.Errorf("%s sample segment %d: %w", codec, i, err)
				}
				out[seg] = p
			}
		}
	}
	return out, nil
}

// loadFMP4Sample reads dir/init.mp4 and dir/0.m4s, 1.m4s, ... and checks
// what looping relies on: every track's decode times run on unbroken from
// segment to segment, each track's loop lasts exactly one second per
// segment (so audio and video never drift apart over loops), and every
// segment starts with a video keyframe.
func loadFMP4Sample(dir string) (*fmp4Sample, error) {
	raw, err := hlsFiles.ReadFile(dir + "/init.mp4")
	if err != nil {
		return nil, err
	}
	init, err := parseInit(raw)
	if err != nil {
		return nil, err
	}
	smp := &fmp4Sample{init: init, loop: map[uint32]uint64{}}
	for id, tr := range init.tracks {
		if tr.handler == "vide" {
			smp.video = id
		}
	}
	if smp.video == 0 {
		return nil, errors.New("no video track")
	}
	for i := 0; ; i++ {
		raw, err := hlsFiles.ReadFile(fmt.Sprintf("%s/%d.m4s", dir, i))
		if errors.Is(err, fs.ErrNotExist) && i > 0 {
			break
		}
		if err != nil {
			return nil, err
		}
		seg, err := parseSegment(raw, init)
		if err != nil {
			return nil, fmt.Errorf("segment %d: %w", i, err)
		}
		smp.segments = append(smp.segments, seg)
	}
	n := uint64(len(smp.segments))
	for id, tr := range init.tracks {
		next := smp.segments[0].start[id]
		for i, seg := range smp.segments {
			if seg.start[id] != next {
				return nil, fmt.Errorf("track %d: segment %d starts at %d, want %d", id, i, seg.start[id], next)
			}
			next += seg.duration[id]
		}
		smp.loop[id] = next - smp.segments[0].start[id]
		if smp.loop[id] != n*uint64(tr.timescale) {
			return nil, fmt.Errorf("track %d: the loop lasts %d ticks, want %d s", id, smp.loop[id], n)
		}
	}
	for i, seg := range smp.segments {
		if v := seg.samples[smp.video]; len(v) == 0 || !v[0].sync {
			return nil, fmt.Errorf("segment %d does not start with a keyframe", i)
		}
	}
	return smp, nil
}

// loadTSSample reads dir/0.ts, 1.ts, ... and checks that each segment
// starts with a video keyframe a whole second after the one before.
func loadTSSample(dir string) (*tsSample, error) {
	smp := &tsSample{packets: map[uint16]int{}}
	for i := 0; ; i++ {
		raw, err := hlsFiles.ReadFile(fmt.Sprintf("%s/%d.ts", dir, i))
		if errors.Is(err, fs.ErrNotExist) && i > 0 {
			break
		}
		if err != nil {
			return nil, err
		}
		seg, err := parseTSSegment(raw)
		if err != nil {
			return nil, fmt.Errorf("segment %d: %w", i, err)
		}
		if !seg.keyframe {
			return nil, fmt.Errorf("segment %d does not start with a keyframe", i)
		}
		if first := smp.segments; len(first) > 0 && seg.videoPTS != first[0].videoPTS+uint64(i)*90000 {
			return nil, fmt.Errorf("segment %d starts at PTS %d, want %d", i, seg.videoPTS, first[0].videoPTS+uint64(i)*90000)
		}
		for pid, n := range seg.counts {
			smp.packets[pid] += n
		}
		smp.segments = append(smp.segments, seg)
		smp.durations = append(smp.durations, 1)
	}
	return smp, nil
}

// flvFromFMP4 frames an fMP4 sample as the FLV stream Bilibili's CDN serves
// for HEVC: video tags with codec id 12 laid out as AVC's (packet type,
// 24-bit composition time), the HEVCDecoderConfigurationRecord as the
// sequence header and length-prefixed NAL units as frames; AAC as usual.
func flvFromFMP4(fx *fmp4Sample) (*sample, error) {
	var video, audio *mp4Track
	for _, tr := range fx.init.tracks {
		switch tr.handler {
		case "vide":
			video = tr
		case "soun":
			audio = tr
		}
	}
	if video == nil || audio == nil || video.entry[0] != 'h' || audio.entry != "mp4a" {
		return nil, errors.New("want an HEVC and an AAC track")
	}
	const hevc = 12
	smp := &sample{
		script:   &flv.Tag{Type: flv.TagScript, Data: hevcMetadata(audio)},
		videoSeq: &flv.Tag{Type: flv.TagVideo, Data: append([]byte{1<<4 | hevc, 0, 0, 0, 0}, video.config...)},
		aacSeq:   &flv.Tag{Type: flv.TagAudio, Data: append([]byte{0xaf, 0}, audio.config...)},
		duration: int64(fx.loop[video.id] * 1000 / uint64(video.timescale)),
	}
	ms := func(ticks uint64, tr *mp4Track) int64 { return int64(ticks * 1000 / uint64(tr.timescale)) }
	vStart, aStart := fx.segments[0].start[video.id], fx.segments[0].start[audio.id]
	for _, seg := range fx.segments {
		for _, s := range seg.samples[video.id] {
			frame := byte(2)
			if s.sync {
				frame = 1
			}
			cts := int32(math.Round(float64(s.cto) * 1000 / float64(video.timescale)))
			data := append([]byte{frame<<4 | hevc, 1, byte(cts >> 16), byte(cts >> 8), byte(cts)}, s.data...)
			smp.media = append(smp.media, &flv.Tag{Type: flv.TagVideo, Timestamp: ms(s.dts-vStart, video), Data: data})
		}
		for _, s := range seg.samples[audio.id] {
			data := append([]byte{0xaf, 1}, s.data...)
			smp.media = append(smp.media, &flv.Tag{Type: flv.TagAudio, Timestamp: ms(s.dts-aStart, audio), Data: data})
		}
	}
	slices.SortStableFunc(smp.media, func(a, b *flv.Tag) int { return int(a.Timestamp - b.Timestamp) })
	for i, t := range smp.media {
		if t.Type == flv.TagVideo && t.Data[0]>>4 == 1 {
			smp.keyframes = append(smp.keyframes, i)
		}
	}
	if len(smp.keyframes) == 0 || smp.keyframes[0] != 0 {
		return nil, errors.New("want media starting with a video keyframe")
	}
	return smp, nil
}

// hevcMetadata is the onMetaData script tag body of the HEVC FLV stream, in
// AMF0: the name, then an ECMA array of the stream's properties.
func hevcMetadata(audio *mp4Track) []byte {
	str := func(b []byte, s string) []byte {
		return append(binary.BigEndian.AppendUint16(b, uint16(len(s))), s...)
	}
	b := str([]byte{0x02}, "onMetaData")
	props := []struct {
		key string
		val float64
	}{
		{"duration", 0}, {"width", 320}, {"height", 180}, {"framerate", 30},
		{"videocodecid", 12}, {"audiocodecid", 10}, {"audiosamplerate", float64(audio.timescale)},
	}
	b = binary.BigEndian.AppendUint32(append(b, 0x08), uint32(len(props)))
	for _, p := range props {
		b = binary.BigEndian.AppendUint64(append(str(b, p.key), 0x00), math.Float64bits(p.val))
	}
	return append(b, 0, 0, 9)
}
