package bilibilitest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// This file walks the ISO-BMFF boxes of the fMP4 samples: just enough to
// loop them (rewrite mfhd and tfdt), to list their samples (durations,
// keyframes, and the HEVC FLV stream framed from them) and to find the
// codec configuration in the init segment. It is the simulator's own, so
// that roomrec's readers are never checked only against themselves.

// box is one ISO-BMFF box in a buffer.
type box struct {
	typ        string
	start, end int // the whole box
	body       int // where the body starts, after size and type
}

var errBox = errors.New("malformed ISO-BMFF box")

// boxes lists the boxes laid end to end in b[start:end].
func boxes(b []byte, start, end int) ([]box, error) {
	var out []box
	for off := start; off < end; {
		if end-off < 8 {
			return nil, fmt.Errorf("%w: %d bytes left at %d", errBox, end-off, off)
		}
		size := uint64(binary.BigEndian.Uint32(b[off:]))
		typ := string(b[off+4 : off+8])
		body := off + 8
		switch size {
		case 0: // to the end of the enclosing box
			size = uint64(end - off)
		case 1:
			if end-off < 16 {
				return nil, fmt.Errorf("%w: %q at %d: truncated 64-bit size", errBox, typ, off)
			}
			size, body = binary.BigEndian.Uint64(b[off+8:]), off+16
		}
		if size < uint64(body-off) || size > uint64(end-off) {
			return nil, fmt.Errorf("%w: %q at %d: size %d does not fit", errBox, typ, off, size)
		}
		out = append(out, box{typ: typ, start: off, end: off + int(size), body: body})
		off += int(size)
	}
	return out, nil
}

// children lists the boxes in parent's body after skip bytes of fields.
func children(b []byte, parent box, skip int) ([]box, error) {
	if parent.body+skip > parent.end {
		return nil, fmt.Errorf("%w: %q too short", errBox, parent.typ)
	}
	return boxes(b, parent.body+skip, parent.end)
}

// find returns the first box of a type, following a path of container
// boxes ("moov", "trak", ...) that have no fields before their children.
func find(b []byte, in []box, path ...string) (box, bool) {
	for _, bx := range in {
		if bx.typ != path[0] {
			continue
		}
		if len(path) == 1 {
			return bx, true
		}
		kids, err := children(b, bx, 0)
		if err != nil {
			return box{}, false
		}
		return find(b, kids, path[1:]...)
	}
	return box{}, false
}

func findAll(in []box, typ string) []box {
	var out []box
	for _, bx := range in {
		if bx.typ == typ {
			out = append(out, bx)
		}
	}
	return out
}

// need fails unless a box's body holds at least n bytes.
func need(bx box, n int) error {
	if bx.end-bx.body < n {
		return fmt.Errorf("%w: %q body of %d bytes, want %d", errBox, bx.typ, bx.end-bx.body, n)
	}
	return nil
}

// mp4Track is one track of an init segment.
type mp4Track struct {
	id          uint32
	timescale   uint32
	handler     string // "vide" or "soun"
	entry       string // sample entry: "avc1", "hvc1", "hev1", "mp4a"
	config      []byte // avcC or hvcC body, or the AAC AudioSpecificConfig
	defDuration uint32 // trex defaults
	defFlags    uint32
}

// mp4Init is a parsed init segment (ftyp + moov).
type mp4Init struct {
	raw    []byte
	tracks map[uint32]*mp4Track
}

func parseInit(raw []byte) (*mp4Init, error) {
	top, err := boxes(raw, 0, len(raw))
	if err != nil {
		return nil, err
	}
	moov, ok := find(raw, top, "moov")
	if !ok {
		return nil, fmt.Errorf("init: no moov")
	}
	kids, err := children(raw, moov, 0)
	if err != nil {
		return nil, err
	}
	init := &mp4Init{raw: raw, tracks: map[uint32]*mp4Track{}}
	for _, trak := range findAll(kids, "trak") {
		tr, err := parseTrak(raw, trak)
		if err != nil {
			return nil, err
		}
		init.tracks[tr.id] = tr
	}
	if mvex, ok := find(raw, kids, "mvex"); ok {
		mk, err := children(raw, mvex, 0)
		if err != nil {
			return nil, err
		}
		for _, trex := range findAll(mk, "trex") {
			if err := need(trex, 24); err != nil {
				return nil, err
			}
			if tr := init.tracks[binary.BigEndian.Uint32(raw[trex.body+4:])]; tr != nil {
				tr.defDuration = binary.BigEndian.Uint32(raw[trex.body+12:])
				tr.defFlags = binary.BigEndian.Uint32(raw[trex.body+20:])
			}
		}
	}
	if len(init.tracks) == 0 {
		return nil, fmt.Errorf("init: no tracks")
	}
	return init, nil
}

func parseTrak(b []byte, trak box) (*mp4Track, error) {
	kids, err := children(b, trak, 0)
	if err != nil {
		return nil, err
	}
	tr := &mp4Track{}
	tkhd, ok := find(b, kids, "tkhd")
	if !ok {
		return nil, fmt.Errorf("trak: no tkhd")
	}
	idAt := 12 // version 0: flags, creation and modification times (32-bit)
	if b[tkhd.body] == 1 {
		idAt = 20
	}
	if err := need(tkhd, idAt+4); err != nil {
		return nil, err
	}
	tr.id = binary.BigEndian.Uint32(b[tkhd.body+idAt:])
	mdhd, ok := find(b, kids, "mdia", "mdhd")
	if !ok {
		return nil, fmt.Errorf("track %d: no mdhd", tr.id)
	}
	scaleAt := 12
	if b[mdhd.body] == 1 {
		scaleAt = 20
	}
	if err := need(mdhd, scaleAt+4); err != nil {
		return nil, err
	}
	tr.timescale = binary.BigEndian.Uint32(b[mdhd.body+scaleAt:])
	hdlr, ok := find(b, kids, "mdia", "hdlr")
	if !ok || need(hdlr, 12) != nil {
		return nil, fmt.Errorf("track %d: no hdlr", tr.id)
	}
	tr.handler = string(b[hdlr.body+8 : hdlr.body+12])
	stsd, ok := find(b, kids, "mdia", "minf", "stbl", "stsd")
	if !ok {
		return nil, fmt.Errorf("track %d: no stsd", tr.id)
	}
	entries, err := children(b, stsd, 8) // version, flags, entry count
	if err != nil || len(entries) == 0 {
		return nil, fmt.Errorf("track %d: no sample entry", tr.id)
	}
	entry := entries[0]
	tr.entry = entry.typ
	switch entry.typ {
	case "avc1", "avc3", "hvc1", "hev1":
		// A visual sample entry has 78 bytes of fields before its boxes.
		sub, err := children(b, entry, 78)
		if err != nil {
			return nil, err
		}
		name := "avcC"
		if entry.typ[0] == 'h' {
			name = "hvcC"
		}
		cfg, ok := find(b, sub, name)
		if !ok {
			return nil, fmt.Errorf("track %d: no %s", tr.id, name)
		}
		tr.config = b[cfg.body:cfg.end]
	case "mp4a":
		// An audio sample entry has 28 bytes of fields before its boxes.
		sub, err := children(b, entry, 28)
		if err != nil {
			return nil, err
		}
		esds, ok := find(b, sub, "esds")
		if !ok {
			return nil, fmt.Errorf("track %d: no esds", tr.id)
		}
		tr.config, err = audioSpecificConfig(b[esds.body+4 : esds.end])
		if err != nil {
			return nil, fmt.Errorf("track %d: %w", tr.id, err)
		}
	}
	return tr, nil
}

// audioSpecificConfig finds the DecoderSpecificInfo (tag 5) in an esds
// box's ES_Descriptor (tag 3) > DecoderConfigDescriptor (tag 4).
func audioSpecificConfig(d []byte) ([]byte, error) {
	// descriptor reads a tag and its variable-length size.
	descriptor := func(d []byte) (tag byte, body, rest []byte, err error) {
		if len(d) < 2 {
			return 0, nil, nil, errors.New("esds: truncated descriptor")
		}
		tag, n, i := d[0], 0, 1
		for ; i < len(d) && i <= 4; i++ {
			n = n<<7 | int(d[i]&0x7f)
			if d[i]&0x80 == 0 {
				break
			}
		}
		i++
		if i > len(d) || n > len(d)-i {
			return 0, nil, nil, errors.New("esds: descriptor overruns")
		}
		return tag, d[i : i+n], d[i+n:], nil
	}
	tag, es, _, err := descriptor(d)
	if err != nil || tag != 3 || len(es) < 3 {
		return nil, errors.New("esds: no ES_Descriptor")
	}
	flags := es[2]
	es = es[3:] // ES_ID, flags
	if flags&0x80 != 0 {
		es = es[min(2, len(es)):] // dependsOn_ES_ID
	}
	if flags&0x40 != 0 && len(es) > 0 {
		es = es[min(1+int(es[0]), len(es)):] // URL
	}
	if flags&0x20 != 0 {
		es = es[min(2, len(es)):] // OCR_ES_Id
	}
	tag, dc, _, err := descriptor(es)
	if err != nil || tag != 4 || len(dc) < 13 {
		return nil, errors.New("esds: no DecoderConfigDescriptor")
	}
	tag, dsi, _, err := descriptor(dc[13:])
	if err != nil || tag != 5 {
		return nil, errors.New("esds: no DecoderSpecificInfo")
	}
	return dsi, nil
}

// mp4Sample is one sample of a segment, in decode order.
type mp4Sample struct {
	dts      uint64 // in the track's timescale, as in the sample file
	duration uint32
	cto      int32 // composition offset
	sync     bool
	data     []byte
}

// tfdtField is where one traf's baseMediaDecodeTime sits.
type tfdtField struct {
	off   int // of the value
	wide  bool
	track uint32
	base  uint64
}

// fmp4Segment is one 1 s media segment as the simulator serves it: its moof
// and mdat boxes, with where the fields a loop rewrites sit.
type fmp4Segment struct {
	data     []byte
	mfhd     []int // offsets of each moof's sequence_number
	tfdt     []tfdtField
	samples  map[uint32][]mp4Sample
	start    map[uint32]uint64 // first decode time per track
	duration map[uint32]uint64 // sum of sample durations per track
	runs     []trunLayout      // every trun, for padding
	mdats    []box
}

// trunLayout is where one trun's fields and samples sit in a segment.
type trunLayout struct {
	track        uint32
	moof         int // the moof's start, which data_offset counts from
	dataOffsetAt int // where data_offset sits
	samples      []sampleLayout
}

// sampleLayout is where one sample's data and its trun size field sit.
type sampleLayout struct {
	at, size, sizeAt int
}

// parseSegment keeps a sample file's moof and mdat boxes (ffmpeg's styp and
// sidx go: Bilibili's segments start with moof) and finds what a loop
// rewrites and the samples.
func parseSegment(raw []byte, init *mp4Init) (*fmp4Segment, error) {
	top, err := boxes(raw, 0, len(raw))
	if err != nil {
		return nil, err
	}
	seg := &fmp4Segment{samples: map[uint32][]mp4Sample{}, start: map[uint32]uint64{}, duration: map[uint32]uint64{}}
	for _, bx := range top {
		switch bx.typ {
		case "moof", "mdat":
			seg.data = append(seg.data, raw[bx.start:bx.end]...)
		case "styp", "sidx":
		default:
			return nil, fmt.Errorf("segment: unexpected top-level box %q", bx.typ)
		}
	}
	b := seg.data
	top, err = boxes(b, 0, len(b))
	if err != nil {
		return nil, err
	}
	if len(top) == 0 || top[0].typ != "moof" {
		return nil, fmt.Errorf("segment: does not start with moof")
	}
	for i, moof := range top {
		if moof.typ != "moof" {
			seg.mdats = append(seg.mdats, moof)
			continue
		}
		if i+1 >= len(top) || top[i+1].typ != "mdat" {
			return nil, fmt.Errorf("segment: moof at %d without its mdat", moof.start)
		}
		if err := seg.parseMoof(b, moof, top[i+1], init); err != nil {
			return nil, err
		}
	}
	if len(seg.mfhd) == 0 {
		return nil, fmt.Errorf("segment: no moof")
	}
	return seg, nil
}

func (seg *fmp4Segment) parseMoof(b []byte, moof, mdat box, init *mp4Init) error {
	kids, err := children(b, moof, 0)
	if err != nil {
		return err
	}
	mfhd, ok := find(b, kids, "mfhd")
	if !ok || need(mfhd, 8) != nil {
		return fmt.Errorf("moof at %d: no mfhd", moof.start)
	}
	seg.mfhd = append(seg.mfhd, mfhd.body+4)
	for _, traf := range findAll(kids, "traf") {
		tk, err := children(b, traf, 0)
		if err != nil {
			return err
		}
		tfhd, ok := find(b, tk, "tfhd")
		if !ok || need(tfhd, 8) != nil {
			return fmt.Errorf("traf at %d: no tfhd", traf.start)
		}
		flags := binary.BigEndian.Uint32(b[tfhd.body:]) & 0xffffff
		track := binary.BigEndian.Uint32(b[tfhd.body+4:])
		tr := init.tracks[track]
		if tr == nil {
			return fmt.Errorf("traf for track %d, which the init lacks", track)
		}
		// Offsets count from the moof: the simulator moves segments'
		// boxes, which an absolute base_data_offset would not survive.
		if flags&0x1 != 0 {
			return fmt.Errorf("track %d: tfhd has a base_data_offset", track)
		}
		defDuration, defFlags := tr.defDuration, tr.defFlags
		at := tfhd.body + 8
		for _, f := range []struct {
			bit uint32
			dst *uint32
		}{{0x2, nil}, {0x8, &defDuration}, {0x10, nil}, {0x20, &defFlags}} {
			if flags&f.bit == 0 {
				continue
			}
			if at+4 > tfhd.end {
				return fmt.Errorf("track %d: tfhd truncated", track)
			}
			if f.dst != nil {
				*f.dst = binary.BigEndian.Uint32(b[at:])
			}
			at += 4
		}
		tfdt, ok := find(b, tk, "tfdt")
		if !ok || need(tfdt, 8) != nil {
			return fmt.Errorf("track %d: no tfdt", track)
		}
		f := tfdtField{off: tfdt.body + 4, track: track, wide: b[tfdt.body] == 1}
		if f.wide {
			if err := need(tfdt, 12); err != nil {
				return err
			}
			f.base = binary.BigEndian.Uint64(b[f.off:])
		} else {
			f.base = uint64(binary.BigEndian.Uint32(b[f.off:]))
		}
		seg.tfdt = append(seg.tfdt, f)
		if _, ok := seg.start[track]; !ok {
			seg.start[track] = f.base
		}
		dts := f.base
		for _, trun := range findAll(tk, "trun") {
			samples, layout, err := parseTrun(b, trun, moof, mdat, defDuration, defFlags, dts)
			if err != nil {
				return fmt.Errorf("track %d: %w", track, err)
			}
			layout.track = track
			seg.runs = append(seg.runs, layout)
			for _, s := range samples {
				dts += uint64(s.duration)
				seg.duration[track] += uint64(s.duration)
			}
			seg.samples[track] = append(seg.samples[track], samples...)
		}
	}
	return nil
}

// parseTrun lists a trun's samples and where its fields and their data
// sit.
func parseTrun(b []byte, trun, moof, mdat box, defDuration, defFlags uint32, dts uint64) ([]mp4Sample, trunLayout, error) {
	layout := trunLayout{moof: moof.start}
	fail := func(err error) ([]mp4Sample, trunLayout, error) { return nil, layout, err }
	if err := need(trun, 8); err != nil {
		return fail(err)
	}
	flags := binary.BigEndian.Uint32(b[trun.body:]) & 0xffffff
	count := int(binary.BigEndian.Uint32(b[trun.body+4:]))
	at := trun.body + 8
	read := func() (uint32, error) {
		if at+4 > trun.end {
			return 0, errors.New("trun truncated")
		}
		v := binary.BigEndian.Uint32(b[at:])
		at += 4
		return v, nil
	}
	if flags&0x1 == 0 {
		return fail(errors.New("trun without data_offset"))
	}
	layout.dataOffsetAt = at
	v, err := read()
	if err != nil {
		return fail(err)
	}
	data := moof.start + int(int32(v))
	firstFlags, hasFirst := uint32(0), flags&0x4 != 0
	if hasFirst {
		if firstFlags, err = read(); err != nil {
			return fail(err)
		}
	}
	if count > (trun.end-at)/4+1 {
		return fail(fmt.Errorf("trun claims %d samples", count))
	}
	out := make([]mp4Sample, 0, count)
	for i := range count {
		s := mp4Sample{dts: dts, duration: defDuration}
		sflags := defFlags
		var size uint32
		if flags&0x100 != 0 {
			if s.duration, err = read(); err != nil {
				return fail(err)
			}
		}
		sizeAt := at
		if flags&0x200 != 0 {
			if size, err = read(); err != nil {
				return fail(err)
			}
		} else {
			return fail(errors.New("trun without sample sizes"))
		}
		if flags&0x400 != 0 {
			if sflags, err = read(); err != nil {
				return fail(err)
			}
		} else if i == 0 && hasFirst {
			sflags = firstFlags
		}
		if flags&0x800 != 0 {
			cto, err := read()
			if err != nil {
				return fail(err)
			}
			s.cto = int32(cto)
		}
		if data < mdat.body || int(size) > mdat.end-data {
			return fail(fmt.Errorf("sample %d lies outside its mdat", i))
		}
		s.sync = sflags&0x10000 == 0 // sample_is_non_sync_sample
		s.data = b[data : data+int(size)]
		layout.samples = append(layout.samples, sampleLayout{at: data, size: int(size), sizeAt: sizeAt})
		data += int(size)
		dts += uint64(s.duration)
		out = append(out, s)
	}
	return out, layout, nil
}

// rewrite writes the segment into dst with each moof numbered from
// sequence on and each track's decode times moved by shift[track] ticks,
// and returns dst.
func (seg *fmp4Segment) rewrite(dst []byte, sequence uint32, shift map[uint32]uint64) []byte {
	dst = append(dst[:0], seg.data...)
	for i, off := range seg.mfhd {
		binary.BigEndian.PutUint32(dst[off:], sequence+uint32(i))
	}
	for _, f := range seg.tfdt {
		v := f.base + shift[f.track]
		if f.wide {
			binary.BigEndian.PutUint64(dst[f.off:], v)
		} else {
			// A 32-bit tfdt wraps, as it would in a real one; ffmpeg
			// writes 64-bit ones.
			binary.BigEndian.PutUint32(dst[f.off:], uint32(v))
		}
	}
	return dst
}

// padded returns a copy of the segment in which every sample of track
// video ends with filler (a filler-data NAL unit, see appendFiller): the
// trun sample sizes and data offsets and the mdat sizes are rewritten to
// match, and the mfhd and tfdt offsets moved, so rewrite works on the copy
// as on the original. The copy's samples still describe the sample's own
// frames, without the filler; the copy cannot be padded again.
func (seg *fmp4Segment) padded(video uint32, filler []byte) (*fmp4Segment, error) {
	// The filler goes in at the end of every video sample, so a byte at
	// offset x moves by the filler put in at or before x.
	var ends []int
	for _, run := range seg.runs {
		if run.track == video {
			for _, smp := range run.samples {
				ends = append(ends, smp.at+smp.size)
			}
		}
	}
	slices.Sort(ends)
	moved := func(x int) int {
		n, _ := slices.BinarySearch(ends, x+1) // how many ends are <= x
		return x + n*len(filler)
	}
	data := make([]byte, 0, len(seg.data)+len(ends)*len(filler))
	prev := 0
	for _, end := range ends {
		data = append(append(data, seg.data[prev:end]...), filler...)
		prev = end
	}
	data = append(data, seg.data[prev:]...)

	for _, run := range seg.runs {
		if len(run.samples) == 0 {
			continue
		}
		offset := moved(run.samples[0].at) - moved(run.moof)
		binary.BigEndian.PutUint32(data[moved(run.dataOffsetAt):], uint32(int32(offset)))
		if run.track == video {
			for _, smp := range run.samples {
				binary.BigEndian.PutUint32(data[moved(smp.sizeAt):], uint32(smp.size+len(filler)))
			}
		}
	}
	for _, mdat := range seg.mdats {
		at, size := moved(mdat.start), moved(mdat.end)-moved(mdat.start)
		switch binary.BigEndian.Uint32(seg.data[mdat.start:]) {
		case 0: // to the end of the segment, as before
		case 1:
			binary.BigEndian.PutUint64(data[at+8:], uint64(size))
		default:
			if size > math.MaxUint32 {
				return nil, fmt.Errorf("padded mdat of %d bytes needs a 64-bit size", size)
			}
			binary.BigEndian.PutUint32(data[at:], uint32(size))
		}
	}
	out := &fmp4Segment{data: data, mfhd: make([]int, len(seg.mfhd)), tfdt: slices.Clone(seg.tfdt),
		samples: seg.samples, start: seg.start, duration: seg.duration}
	for i, off := range seg.mfhd {
		out.mfhd[i] = moved(off)
	}
	for i := range out.tfdt {
		out.tfdt[i].off = moved(out.tfdt[i].off)
	}
	return out, nil
}

// nalLengthSize returns how many bytes prefix each NAL unit of a video
// track's samples, from its avcC or hvcC.
func (tr *mp4Track) nalLengthSize() (int, error) {
	at := 4 // avcC: lengthSizeMinusOne
	if tr.entry[0] == 'h' {
		at = 21 // hvcC
	}
	if len(tr.config) <= at {
		return 0, fmt.Errorf("track %d: %s too short", tr.id, tr.entry)
	}
	return int(tr.config[at]&3) + 1, nil
}
