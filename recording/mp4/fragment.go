package mp4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// sample is one parsed sample: where its bytes are and its times in ms.
type sample struct {
	dts  int64 // decode time, ms
	cts  int32 // composition time offset, ms
	key  bool
	off  int64 // offset of its bytes in the segment or file
	size int64
}

// maxSamples bounds the samples one Segment call (or one fragment in
// ScanComplete) may hold, so a corrupt sample count costs an error, not
// memory or minutes. A 1 s HLS segment holds about 80, a 2 s fragment of a
// 60 fps stream about 220.
const maxSamples = 1 << 17

// maxSeconds bounds a timestamp, so converting it to ms or ns never
// overflows: 2^32 s is 136 years.
const maxSeconds = 1 << 32

// trun and tfhd flags, ISO/IEC 14496-12 8.8.7 and 8.8.8.
const (
	tfhdBaseDataOffset  = 0x000001
	tfhdSampleDescIndex = 0x000002
	tfhdDefaultDuration = 0x000008
	tfhdDefaultSize     = 0x000010
	tfhdDefaultFlags    = 0x000020
	tfhdDefaultBaseMoof = 0x020000

	trunDataOffset = 0x000001
	trunFirstFlags = 0x000004
	trunDuration   = 0x000100
	trunSize       = 0x000200
	trunFlags      = 0x000400
	trunCTO        = 0x000800

	sampleNonSync = 0x00010000 // sample_is_non_sync_sample
)

var errCorrupt = errors.New("corrupt fragment")

// fragmentParser reads moof boxes into samples for the tracks of an init.
// Demuxer and ScanComplete share it, so what ScanComplete calls complete
// is exactly what the demuxer can read.
type fragmentParser struct {
	tracks [2]*track // video, audio; either may be nil
	// strict refuses what this package's writer never writes and a file
	// offset would make ambiguous: tfhd's base_data_offset.
	strict bool
	// keep collects samples into the tracks; ScanComplete only needs times.
	keep  bool
	count int // samples read in this call, against maxSamples
}

type trackState struct {
	next, last, end int64
	seen            bool
	samples         int
}

// begin starts a call: a segment, or a file scan.
func (p *fragmentParser) begin() {
	p.count = 0
	for _, t := range p.tracks {
		if t != nil {
			t.seen, t.end, t.samples = false, 0, t.samples[:0]
		}
	}
}

func (p *fragmentParser) track(id uint32) *track {
	for _, t := range p.tracks {
		if t != nil && t.id == id {
			return t
		}
	}
	return nil
}

// parseMoof reads the moof box whose payload is moof and whose first byte
// is at moofPos. Sample bytes must lie within [lo, hi). On error the
// tracks are left as they were before the call, so a segment cut inside
// its last fragment still yields the fragments before it.
func (p *fragmentParser) parseMoof(moof []byte, moofPos, lo, hi int64) error {
	var saved [2]trackState
	for i, t := range p.tracks {
		if t != nil {
			saved[i] = trackState{t.next, t.last, t.end, t.seen, len(t.samples)}
		}
	}
	count := p.count
	err := p.moof(moof, moofPos, lo, hi)
	if err != nil {
		p.count = count
		for i, t := range p.tracks {
			if t != nil {
				s := saved[i]
				t.next, t.last, t.end, t.seen, t.samples = s.next, s.last, s.end, s.seen, t.samples[:s.samples]
			}
		}
	}
	return err
}

func (p *fragmentParser) moof(moof []byte, moofPos, lo, hi int64) error {
	// The data of a traf without an explicit base starts where the data of
	// the traf before it ended, or at the moof for the first.
	dataEnd := moofPos
	for pos := 0; pos < len(moof); {
		typ, body, next, err := nextBox(moof, pos)
		if err != nil {
			return fmt.Errorf("%w: moof: %w", errCorrupt, err)
		}
		if typ == typeTraf {
			if dataEnd, err = p.traf(body, moofPos, dataEnd, lo, hi); err != nil {
				return err
			}
		}
		pos = next
	}
	return nil
}

// traf reads a track fragment and returns where its data ends.
func (p *fragmentParser) traf(traf []byte, moofPos, prevEnd, lo, hi int64) (int64, error) {
	var (
		t                        *track
		haveTfhd, haveTfdt, runs bool
		skip                     bool
		base, dataPos, dts       int64
		defDur, defSize, defFlag uint32
	)
	for pos := 0; pos < len(traf); {
		typ, body, next, err := nextBox(traf, pos)
		if err != nil {
			return 0, fmt.Errorf("%w: traf: %w", errCorrupt, err)
		}
		pos = next
		switch typ {
		case typeTfhd:
			if haveTfhd {
				return 0, fmt.Errorf("%w: two tfhd in a traf", errCorrupt)
			}
			haveTfhd = true
			if len(body) < 8 {
				return 0, fmt.Errorf("%w: short tfhd", errCorrupt)
			}
			flags := binary.BigEndian.Uint32(body) & 0xffffff
			if t = p.track(binary.BigEndian.Uint32(body[4:])); t == nil {
				skip = true // a track FLV does not carry
				continue
			}
			defDur, defSize, defFlag = t.defDuration, t.defSize, t.defFlags
			base = prevEnd
			if flags&tfhdDefaultBaseMoof != 0 {
				base = moofPos
			}
			f := body[8:]
			field := func(bit uint32, n int) (uint64, error) {
				if flags&bit == 0 {
					return 0, nil
				}
				if len(f) < n {
					return 0, fmt.Errorf("%w: short tfhd", errCorrupt)
				}
				var v uint64
				if n == 8 {
					v = binary.BigEndian.Uint64(f)
				} else {
					v = uint64(binary.BigEndian.Uint32(f))
				}
				f = f[n:]
				return v, nil
			}
			off, err := field(tfhdBaseDataOffset, 8)
			if err != nil {
				return 0, err
			}
			if flags&tfhdBaseDataOffset != 0 {
				if p.strict || off > math.MaxInt64 {
					return 0, fmt.Errorf("%w: tfhd base_data_offset", errCorrupt)
				}
				base = int64(off)
			}
			if _, err := field(tfhdSampleDescIndex, 4); err != nil {
				return 0, err
			}
			for _, d := range []struct {
				bit uint32
				v   *uint32
			}{{tfhdDefaultDuration, &defDur}, {tfhdDefaultSize, &defSize}, {tfhdDefaultFlags, &defFlag}} {
				v, err := field(d.bit, 4)
				if err != nil {
					return 0, err
				}
				if d.bit&flags != 0 {
					*d.v = uint32(v)
				}
			}
		case typeTfdt:
			if skip {
				continue
			}
			if haveTfdt || runs {
				return 0, fmt.Errorf("%w: tfdt out of place", errCorrupt)
			}
			haveTfdt = true
			switch {
			case len(body) >= 8 && body[0] == 0:
				dts = int64(binary.BigEndian.Uint32(body[4:]))
			case len(body) >= 12 && body[0] == 1:
				dts = int64(binary.BigEndian.Uint64(body[4:]))
			default:
				return 0, fmt.Errorf("%w: bad tfdt", errCorrupt)
			}
		case typeTrun:
			if !haveTfhd {
				return 0, fmt.Errorf("%w: trun before tfhd", errCorrupt)
			}
			if skip {
				continue
			}
			if !runs {
				runs, dataPos = true, base
				if !haveTfdt {
					dts = t.next
				}
			}
			dataPos, dts, err = p.trun(t, body, base, dataPos, dts, trunDefaults{defDur, defSize, defFlag}, lo, hi)
			if err != nil {
				return 0, err
			}
		}
	}
	if skip {
		return prevEnd, nil
	}
	if !haveTfhd {
		return 0, fmt.Errorf("%w: traf without tfhd", errCorrupt)
	}
	if haveTfdt || runs {
		t.next = dts
	}
	if !runs {
		return prevEnd, nil
	}
	return dataPos, nil
}

type trunDefaults struct{ duration, size, flags uint32 }

// trun reads a track run starting at decode time dts (ticks), its data at
// dataPos unless the run says where. It returns where its data and its
// time end.
func (p *fragmentParser) trun(t *track, b []byte, base, dataPos, dts int64, def trunDefaults, lo, hi int64) (int64, int64, error) {
	if len(b) < 8 {
		return 0, 0, fmt.Errorf("%w: short trun", errCorrupt)
	}
	version := b[0]
	flags := binary.BigEndian.Uint32(b) & 0xffffff
	count := int64(binary.BigEndian.Uint32(b[4:]))
	b = b[8:]
	if flags&trunDataOffset != 0 {
		if len(b) < 4 {
			return 0, 0, fmt.Errorf("%w: short trun", errCorrupt)
		}
		dataPos = base + int64(int32(binary.BigEndian.Uint32(b)))
		b = b[4:]
	}
	firstFlags, hasFirst := uint32(0), flags&trunFirstFlags != 0
	if hasFirst {
		if len(b) < 4 {
			return 0, 0, fmt.Errorf("%w: short trun", errCorrupt)
		}
		firstFlags, b = binary.BigEndian.Uint32(b), b[4:]
	}
	entry := int64(0)
	for _, bit := range [...]uint32{trunDuration, trunSize, trunFlags, trunCTO} {
		if flags&bit != 0 {
			entry += 4
		}
	}
	if count > maxSamples-int64(p.count) {
		return 0, 0, fmt.Errorf("%w: more than %d samples", errCorrupt, maxSamples)
	}
	if count*entry > int64(len(b)) {
		return 0, 0, fmt.Errorf("%w: trun of %d samples is cut short", errCorrupt, count)
	}
	p.count += int(count)
	ts := int64(t.timescale)
	for i := range count {
		dur, size, sflags, cto := def.duration, def.size, def.flags, int64(0)
		if hasFirst && i == 0 {
			sflags = firstFlags
		}
		if flags&trunDuration != 0 {
			dur, b = binary.BigEndian.Uint32(b), b[4:]
		}
		if flags&trunSize != 0 {
			size, b = binary.BigEndian.Uint32(b), b[4:]
		}
		if flags&trunFlags != 0 {
			sflags, b = binary.BigEndian.Uint32(b), b[4:]
		}
		if flags&trunCTO != 0 {
			if version == 0 {
				cto = int64(binary.BigEndian.Uint32(b))
			} else {
				cto = int64(int32(binary.BigEndian.Uint32(b)))
			}
			b = b[4:]
		}
		if dataPos < lo || int64(size) > hi-dataPos {
			return 0, 0, fmt.Errorf("%w: sample data outside the segment", errCorrupt)
		}
		dtsMs, ok := ticksToMs(dts, ts)
		if !ok {
			return 0, 0, fmt.Errorf("%w: decode time out of range", errCorrupt)
		}
		if t.seen && dtsMs < t.last {
			return 0, 0, fmt.Errorf("%w: track %d goes back in time, %d ms after %d ms", errCorrupt, t.id, dtsMs, t.last)
		}
		t.seen, t.last = true, dtsMs
		if p.keep && size > 0 {
			ptsMs, ok := ticksToMs(dts+cto, ts) // cto is within ±2^32, dts within ±2^63-2^49
			if !ok {
				return 0, 0, fmt.Errorf("%w: presentation time out of range", errCorrupt)
			}
			t.samples = append(t.samples, sample{
				dts: dtsMs, cts: int32(min(max(ptsMs-dtsMs, -1<<23), 1<<23-1)),
				key: sflags&sampleNonSync == 0, off: dataPos, size: int64(size),
			})
		}
		dataPos += int64(size)
		dts += int64(dur)
		t.end = max(t.end, dts)
	}
	return dataPos, dts, nil
}

// ticksToMs converts a time in ticks of a timescale to ms, rounding down.
// It reports false for times beyond maxSeconds or 2^62 ticks either way,
// which leaves room for the sums of durations and offsets the callers make
// without overflow.
func ticksToMs(v, timescale int64) (int64, bool) {
	if v > 1<<62 || v < -1<<62 {
		return 0, false
	}
	q, r := v/timescale, v%timescale
	if r < 0 {
		q, r = q-1, r+timescale
	}
	if q >= maxSeconds || q < -maxSeconds {
		return 0, false
	}
	return q*1000 + r*1000/timescale, true
}
