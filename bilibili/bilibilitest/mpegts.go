package bilibilitest

import (
	"errors"
	"fmt"
)

// This file reads the MPEG-TS samples just enough to loop them: where each
// PES header's PTS and DTS and each PCR sit, so a served segment's clock can
// be moved on, and each packet's continuity counter, so that consecutive
// segments read as one unbroken transport stream, as segments cut from a
// real encoder's stream do.

const tsPacket = 188

// tsTime is where a 33-bit timestamp sits in a segment.
type tsTime struct {
	off int  // of the 5-byte PTS/DTS, or the 6-byte PCR
	pcr bool // a PCR (base and extension) rather than a PES PTS or DTS
}

// tsSegment is one 1 s MPEG-TS segment of a sample.
type tsSegment struct {
	data     []byte
	times    []tsTime
	pids     []uint16 // per packet
	payload  []bool   // per packet: carries a payload, so counts for continuity
	counts   map[uint16]int
	videoPTS uint64 // of the first video PES
	keyframe bool   // the first video packet is a random access point
}

var errTS = errors.New("malformed MPEG-TS")

func parseTSSegment(raw []byte) (*tsSegment, error) {
	if len(raw) == 0 || len(raw)%tsPacket != 0 {
		return nil, fmt.Errorf("%w: %d bytes, not whole packets", errTS, len(raw))
	}
	seg := &tsSegment{data: raw, counts: map[uint16]int{}}
	sawVideo := false
	for p := 0; p < len(raw); p += tsPacket {
		pkt := raw[p : p+tsPacket]
		if pkt[0] != 0x47 {
			return nil, fmt.Errorf("%w: no sync byte at %d", errTS, p)
		}
		pid := uint16(pkt[1]&0x1f)<<8 | uint16(pkt[2])
		start := pkt[1]&0x40 != 0
		afc := pkt[3] >> 4 & 3
		hasPayload := afc&1 != 0
		seg.pids = append(seg.pids, pid)
		seg.payload = append(seg.payload, hasPayload)
		if hasPayload {
			seg.counts[pid]++
		}
		payload := 4
		rai := false
		if afc&2 != 0 {
			n := int(pkt[4])
			if 5+n > tsPacket {
				return nil, fmt.Errorf("%w: adaptation field overruns at %d", errTS, p)
			}
			if n > 0 {
				rai = pkt[5]&0x40 != 0
				if pkt[5]&0x10 != 0 {
					if n < 7 {
						return nil, fmt.Errorf("%w: short PCR at %d", errTS, p)
					}
					seg.times = append(seg.times, tsTime{off: p + 6, pcr: true})
				}
			}
			payload += 1 + n
		}
		if !start || !hasPayload || payload+9 > tsPacket {
			continue
		}
		pes := pkt[payload:]
		if pes[0] != 0 || pes[1] != 0 || pes[2] != 1 || pes[3] < 0xc0 || pes[3] > 0xef {
			continue // a table (PAT, PMT, SDT), not audio or video
		}
		ptsDTS := pes[7] >> 6 // 2: PTS, 3: PTS and DTS
		stamps := [4]int{0, 0, 1, 2}[ptsDTS]
		if ptsDTS == 1 || 9+5*stamps > len(pes) || int(pes[8]) < 5*stamps {
			return nil, fmt.Errorf("%w: PES header at %d", errTS, p)
		}
		if ptsDTS&2 != 0 {
			seg.times = append(seg.times, tsTime{off: p + payload + 9})
			if !sawVideo && pes[3] >= 0xe0 {
				sawVideo = true
				seg.videoPTS = readTSTime(pes[9:])
				seg.keyframe = rai
			}
		}
		if ptsDTS == 3 {
			seg.times = append(seg.times, tsTime{off: p + payload + 14})
		}
	}
	if !sawVideo {
		return nil, fmt.Errorf("%w: segment without video", errTS)
	}
	return seg, nil
}

// readTSTime reads a PES header's 33-bit PTS or DTS.
func readTSTime(b []byte) uint64 {
	return uint64(b[0]>>1&7)<<30 | uint64(b[1])<<22 | uint64(b[2]>>1)<<15 | uint64(b[3])<<7 | uint64(b[4]>>1)
}

// putTSTime writes v as a PTS or DTS, keeping the 4-bit prefix and the
// marker bits.
func putTSTime(b []byte, v uint64) {
	b[0] = b[0]&0xf0 | byte(v>>29)&0x0e | 1
	b[1] = byte(v >> 22)
	b[2] = byte(v>>14)&0xfe | 1
	b[3] = byte(v >> 7)
	b[4] = byte(v<<1) | 1
}

func readPCRBase(b []byte) uint64 {
	return uint64(b[0])<<25 | uint64(b[1])<<17 | uint64(b[2])<<9 | uint64(b[3])<<1 | uint64(b[4]>>7)
}

func putPCRBase(b []byte, v uint64) {
	b[0], b[1], b[2], b[3] = byte(v>>25), byte(v>>17), byte(v>>9), byte(v>>1)
	b[4] = b[4]&0x7f | byte(v&1)<<7
}

// rewrite writes the segment into dst with every timestamp moved by shift
// (90 kHz ticks, modulo 2^33 as the clock wraps) and every continuity
// counter moved by cc[pid], and returns dst.
func (seg *tsSegment) rewrite(dst []byte, shift uint64, cc map[uint16]int) []byte {
	const wrap = 1 << 33
	dst = append(dst[:0], seg.data...)
	for _, t := range seg.times {
		b := dst[t.off:]
		if t.pcr {
			putPCRBase(b, (readPCRBase(b)+shift)%wrap)
		} else {
			putTSTime(b, (readTSTime(b)+shift)%wrap)
		}
	}
	for i, pid := range seg.pids {
		if add := cc[pid]; add != 0 && seg.payload[i] {
			at := i*tsPacket + 3
			dst[at] = dst[at]&0xf0 | (dst[at]+byte(add))&0x0f
		}
	}
	return dst
}
