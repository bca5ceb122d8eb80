package mp4

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrNotMP4 is returned for bytes that do not hold a complete fragmented MP4
// initialization segment (ftyp and moov) with an H.264, H.265 or AAC track.
var ErrNotMP4 = errors.New("not a fragmented MP4 with a usable init")

// FLV codec ids of the video and audio tags this package makes and takes.
const (
	codecAVC  = 7
	codecHEVC = 12 // Bilibili's CDN extension of FLV, laid out like AVC
	codecAAC  = 10
)

type trackKind uint8

const (
	kindVideo trackKind = iota + 1
	kindAudio
)

// track is one track of an init segment, with what parsing its fragments
// needs to remember.
type track struct {
	id        uint32
	kind      trackKind
	codec     byte   // FLV codec id
	timescale uint32 // ticks per second
	header    []byte // the FLV sequence header tag data: codec config

	// trex defaults, used where tfhd and trun give no value.
	defDuration, defSize, defFlags uint32

	// next is the decode time just past the last sample parsed, in ticks:
	// a traf without tfdt continues from it.
	next int64
	// last is the DTS in ms of the last sample parsed in this call, for
	// the rule that a track never goes back within a segment.
	last int64
	seen bool
	// end is the latest end (DTS plus duration, ticks) of any sample
	// parsed in this call: the track's duration so far.
	end     int64
	samples []sample // parsed and waiting to be emitted
}

// parseInit reads an initialization segment: ftyp (optional) and moov.
// It returns the first video and the first audio track it can turn into
// FLV, and where the moov ends.
func parseInit(b []byte) (video, audio *track, end int, err error) {
	for pos := 0; pos < len(b); {
		typ, body, next, err := nextBox(b, pos)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("%w: %w", ErrNotMP4, err)
		}
		switch typ {
		case typeFtyp, typeFree, typeSkip, typeStyp, typeUUID, typeSidx, typePrft:
		case typeMoov:
			video, audio, err = parseMoov(body)
			if err != nil {
				return nil, nil, 0, err
			}
			return video, audio, next, nil
		default:
			return nil, nil, 0, fmt.Errorf("%w: %v box before moov", ErrNotMP4, typ)
		}
		pos = next
	}
	return nil, nil, 0, fmt.Errorf("%w: no moov", ErrNotMP4)
}

func parseMoov(moov []byte) (video, audio *track, err error) {
	var trex []byte
	for pos := 0; pos < len(moov); {
		typ, body, next, err := nextBox(moov, pos)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: moov: %w", ErrNotMP4, err)
		}
		switch typ {
		case typeTrak:
			t, err := parseTrak(body)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: %w", ErrNotMP4, err)
			}
			switch {
			case t == nil:
				// A track of a kind FLV cannot carry (subtitles, data).
			case t.kind == kindVideo && video == nil:
				video = t
			case t.kind == kindAudio && audio == nil:
				audio = t
			}
		case typeMvex:
			trex = body
		}
		pos = next
	}
	if video == nil && audio == nil {
		return nil, nil, fmt.Errorf("%w: no H.264, H.265 or AAC track", ErrNotMP4)
	}
	for pos := 0; pos < len(trex); {
		typ, body, next, err := nextBox(trex, pos)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: mvex: %w", ErrNotMP4, err)
		}
		if typ == typeTrex && len(body) >= 24 {
			id := binary.BigEndian.Uint32(body[4:])
			for _, t := range []*track{video, audio} {
				if t != nil && t.id == id {
					t.defDuration = binary.BigEndian.Uint32(body[12:])
					t.defSize = binary.BigEndian.Uint32(body[16:])
					t.defFlags = binary.BigEndian.Uint32(body[20:])
				}
			}
		}
		pos = next
	}
	return video, audio, nil
}

// parseTrak returns the track a trak describes, or nil for a codec this
// package does not carry.
func parseTrak(trak []byte) (*track, error) {
	tkhd := findBox(trak, typeTkhd)
	mdia := findBox(trak, typeMdia)
	if tkhd == nil || mdia == nil {
		return nil, errors.New("trak without tkhd or mdia")
	}
	t := &track{}
	switch {
	case len(tkhd) >= 16 && tkhd[0] == 0:
		t.id = binary.BigEndian.Uint32(tkhd[12:])
	case len(tkhd) >= 24 && tkhd[0] == 1:
		t.id = binary.BigEndian.Uint32(tkhd[20:])
	default:
		return nil, errors.New("bad tkhd")
	}
	mdhd := findBox(mdia, typeMdhd)
	switch {
	case len(mdhd) >= 16 && mdhd[0] == 0:
		t.timescale = binary.BigEndian.Uint32(mdhd[12:])
	case len(mdhd) >= 24 && mdhd[0] == 1:
		t.timescale = binary.BigEndian.Uint32(mdhd[20:])
	default:
		return nil, fmt.Errorf("track %d: bad or missing mdhd", t.id)
	}
	if t.timescale == 0 {
		return nil, fmt.Errorf("track %d: timescale 0", t.id)
	}
	stsd := findBox(findBox(findBox(mdia, typeMinf), typeStbl), typeStsd)
	if len(stsd) < 8 {
		return nil, fmt.Errorf("track %d: no sample description", t.id)
	}
	// Only the first sample entry counts: a live stream has one.
	typ, entry, _, err := nextBox(stsd, 8)
	if err != nil {
		return nil, fmt.Errorf("track %d: stsd: %w", t.id, err)
	}
	switch typ {
	case typeAvc1, typeAvc3, typeHvc1, typeHev1:
		t.kind, t.codec = kindVideo, codecAVC
		want := typeAvcC
		if typ == typeHvc1 || typ == typeHev1 {
			t.codec, want = codecHEVC, typeHvcC
		}
		const visualSampleEntry = 78
		if len(entry) < visualSampleEntry {
			return nil, fmt.Errorf("track %d: short %v", t.id, typ)
		}
		config := findBox(entry[visualSampleEntry:], want)
		if err := checkVideoConfig(t.codec, config); err != nil {
			return nil, fmt.Errorf("track %d: %w", t.id, err)
		}
		t.header = append([]byte{0x10 | t.codec, 0, 0, 0, 0}, config...)
	case typeMp4a:
		t.kind, t.codec = kindAudio, codecAAC
		const audioSampleEntry = 28
		if len(entry) < audioSampleEntry {
			return nil, fmt.Errorf("track %d: short mp4a", t.id)
		}
		// QuickTime sound descriptions of version 1 and 2 are longer.
		skip := audioSampleEntry
		switch binary.BigEndian.Uint16(entry[8:]) {
		case 1:
			skip += 16
		case 2:
			skip += 36
		}
		if len(entry) < skip {
			return nil, fmt.Errorf("track %d: short mp4a", t.id)
		}
		asc, err := parseEsds(findBox(entry[skip:], typeEsds))
		if err != nil {
			return nil, fmt.Errorf("track %d: %w", t.id, err)
		}
		if asc == nil {
			return nil, nil // MPEG audio other than AAC: FLV's AAC tags cannot hold it
		}
		t.header = append([]byte{0xaf, 0}, asc...)
	default:
		return nil, nil
	}
	return t, nil
}

// checkVideoConfig checks the fixed part of an avcC or hvcC record, enough
// that a decoder handed it does not trip on its first bytes.
func checkVideoConfig(codec byte, config []byte) error {
	switch {
	case codec == codecAVC && (len(config) < 7 || config[0] != 1):
		return errors.New("bad or missing avcC")
	case codec == codecHEVC && (len(config) < 23 || config[0] != 1):
		return errors.New("bad or missing hvcC")
	}
	return nil
}

// Descriptor tags of ISO/IEC 14496-1 used in esds.
const (
	tagESDescriptor     = 3
	tagDecoderConfig    = 4
	tagDecoderSpecific  = 5
	tagSLConfigDescript = 6
)

// parseEsds returns the AudioSpecificConfig in an esds box, or nil if the
// stream is not AAC.
func parseEsds(esds []byte) ([]byte, error) {
	if len(esds) < 4 {
		return nil, errors.New("bad or missing esds")
	}
	b := esds[4:]
	tag, body, _, err := readDescriptor(b)
	if err != nil || tag != tagESDescriptor || len(body) < 3 {
		return nil, errors.New("esds without ES_Descriptor")
	}
	flags := body[2]
	skip := 3
	if flags&0x80 != 0 { // streamDependenceFlag
		skip += 2
	}
	if flags&0x40 != 0 { // URL_Flag
		if len(body) <= skip {
			return nil, errors.New("short ES_Descriptor")
		}
		skip += 1 + int(body[skip])
	}
	if flags&0x20 != 0 { // OCRstreamFlag
		skip += 2
	}
	if len(body) < skip {
		return nil, errors.New("short ES_Descriptor")
	}
	tag, dcd, _, err := readDescriptor(body[skip:])
	if err != nil || tag != tagDecoderConfig || len(dcd) < 13 {
		return nil, errors.New("esds without DecoderConfigDescriptor")
	}
	switch dcd[0] { // objectTypeIndication
	case 0x40, 0x66, 0x67, 0x68: // MPEG-4 audio; MPEG-2 AAC main, LC, SSR
	default:
		return nil, nil
	}
	tag, asc, _, err := readDescriptor(dcd[13:])
	if err != nil || tag != tagDecoderSpecific || len(asc) < 2 {
		return nil, errors.New("AAC track without AudioSpecificConfig")
	}
	return asc, nil
}

// readDescriptor reads one descriptor: a tag, a size of one to four bytes
// of seven bits each, and the body.
func readDescriptor(b []byte) (tag byte, body, rest []byte, err error) {
	if len(b) < 2 {
		return 0, nil, nil, errTruncated
	}
	tag = b[0]
	size, i := 0, 1
	for ; i <= 4; i++ {
		if i >= len(b) {
			return 0, nil, nil, errTruncated
		}
		size = size<<7 | int(b[i]&0x7f)
		if b[i]&0x80 == 0 {
			break
		}
	}
	if i > 4 || size > len(b)-i-1 {
		return 0, nil, nil, errTruncated
	}
	return tag, b[i+1 : i+1+size], b[i+1+size:], nil
}
