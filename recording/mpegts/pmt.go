package mpegts

import "encoding/binary"

// mediacommon's Reader learns an AAC track's configuration, when it opens
// a segment, by reading ahead to the track's first PES. A segment whose
// program lists AAC but holds no audio (an encoder with audio off, a
// segment cut short) or whose first audio PES is damaged cannot be opened
// at all, and its video is lost with it. hideAudio is the way around: it
// rewrites the program map so that the Reader sees no audio and opens the
// video alone.

// streamTypeHidden is a stream type mediacommon does not know, so that it
// takes the stream as unsupported without reading it.
const streamTypeHidden = 0xff

// audioStreamTypes are the ISO/IEC 13818-1 stream types for which the
// Reader reads ahead: AAC in ADTS (0x0f), AC-3 (0x81), E-AC-3 (0x87).
var audioStreamTypes = [256]bool{0x0f: true, 0x81: true, 0x87: true}

// hideAudio returns a copy of the TS segment seg in which every program map
// section lists its audio streams under a stream type nobody decodes, with
// the section's CRC recomputed. It returns false if seg has no program map
// that can be rewritten: no PAT pointing to one, or a section that does not
// fit in one packet.
func hideAudio(seg []byte) ([]byte, bool) {
	pmtPIDs := map[uint16]bool{}
	for p := range packets(seg) {
		if pid(p) != 0 {
			continue
		}
		sec, ok := sectionIn(p)
		if !ok || sec[0] != 0x00 { // program_association_section
			continue
		}
		// After the 8-byte header: program_number (16), reserved (3),
		// network or program map PID (13), up to the 4-byte CRC.
		for e := sec[8 : len(sec)-4]; len(e) >= 4; e = e[4:] {
			if binary.BigEndian.Uint16(e) != 0 { // 0 is the network PID
				pmtPIDs[binary.BigEndian.Uint16(e[2:])&0x1fff] = true
			}
		}
	}
	if len(pmtPIDs) == 0 {
		return nil, false
	}
	out := append([]byte(nil), seg...)
	patched := false
	for p := range packets(out) {
		if !pmtPIDs[pid(p)] {
			continue
		}
		sec, ok := sectionIn(p)
		if !ok || sec[0] != 0x02 || len(sec) < 16 { // TS_program_map_section
			continue
		}
		// After the 8-byte header: PCR_PID (16), reserved (4),
		// program_info_length (12), its descriptors, then per stream
		// stream_type (8), elementary_PID (16), ES_info_length (16)
		// and its descriptors.
		infoLen := int(binary.BigEndian.Uint16(sec[10:]) & 0x0fff)
		body := sec[:len(sec)-4]
		for i := 12 + infoLen; i+5 <= len(body); {
			if audioStreamTypes[body[i]] {
				body[i] = streamTypeHidden
			}
			i += 5 + int(binary.BigEndian.Uint16(body[i+3:])&0x0fff)
		}
		binary.BigEndian.PutUint32(sec[len(sec)-4:], crc32MPEG(body))
		patched = true
	}
	return out, patched
}

// packets yields each whole 188-byte packet of seg that starts with the
// sync byte.
func packets(seg []byte) func(yield func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for i := 0; i+188 <= len(seg); i += 188 {
			if seg[i] == 0x47 && !yield(seg[i:i+188]) {
				return
			}
		}
	}
}

func pid(p []byte) uint16 { return binary.BigEndian.Uint16(p[1:]) & 0x1fff }

// sectionIn returns the PSI section that starts in packet p, if p starts
// one and holds all of it.
func sectionIn(p []byte) ([]byte, bool) {
	if p[1]&0x40 == 0 || p[3]&0x10 == 0 { // payload_unit_start, payload present
		return nil, false
	}
	off := 4
	if p[3]&0x20 != 0 { // adaptation field
		off += 1 + int(p[4])
	}
	if off >= len(p) {
		return nil, false
	}
	off += 1 + int(p[off]) // pointer_field
	if off+3 > len(p) {
		return nil, false
	}
	n := 3 + int(binary.BigEndian.Uint16(p[off+1:])&0x0fff) // table_id, section_length and what it counts
	if n < 12 || off+n > len(p) {
		return nil, false
	}
	return p[off : off+n], true
}

// crc32MPEG is the CRC of MPEG-2 sections (ISO/IEC 13818-1 Annex A):
// polynomial 0x04c11db7, most significant bit first, initial value all
// ones, no final inversion. hash/crc32 only computes the bit-reversed form.
func crc32MPEG(b []byte) uint32 {
	crc := uint32(0xffffffff)
	for _, c := range b {
		crc ^= uint32(c) << 24
		for range 8 {
			if crc&0x80000000 != 0 {
				crc = crc<<1 ^ 0x04c11db7
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
