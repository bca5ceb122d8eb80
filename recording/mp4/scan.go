package mp4

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// Limits on what ScanComplete reads into memory: this package's own init
// is a few KiB and a 2 s fragment's moof a few KiB more; anything much
// larger is not a file it wrote.
const (
	maxInitBytes = 16 << 20
	maxMoofBytes = 16 << 20
)

// ScanComplete reads a fragmented MP4 file that may have been cut off
// anywhere (a crash, a full disk) and returns the offset just past its last
// complete moof and mdat pair, where the file should be cut so any player
// opens it, and the media duration up to there: the end of the newest
// sample of any track, from tfdt and the sample durations. It reads the
// init and every moof, but no sample data. A file with an init but no
// complete fragment returns the init's end and 0. A file without a
// complete init (ftyp and moov with an H.264, H.265 or AAC track) returns
// an error wrapping ErrNotMP4; a read error other than the file's end is
// returned as it is.
//
// A fragment counts as complete when its moof parses as the Demuxer would
// parse it, its mdat follows it whole and holds every sample it names, and
// no track goes back in time: so the kept part is what Demuxer reads.
func ScanComplete(r io.ReaderAt, size int64) (end int64, duration time.Duration, err error) {
	var video, audio *track
	pos := int64(0)
	for video == nil && audio == nil {
		typ, hdr, boxSize, err := readBoxHeader(r, pos, size)
		if err != nil {
			return 0, 0, err
		}
		switch typ {
		case 0:
			return 0, 0, fmt.Errorf("%w: no complete moov", ErrNotMP4)
		case typeFtyp, typeFree, typeSkip, typeStyp, typeUUID:
		case typeMoov:
			if boxSize > maxInitBytes {
				return 0, 0, fmt.Errorf("%w: moov of %d bytes", ErrNotMP4, boxSize)
			}
			moov := make([]byte, boxSize)
			if err := readAt(r, moov, pos); err != nil {
				return 0, 0, err
			}
			if video, audio, err = parseMoov(moov[hdr:]); err != nil {
				return 0, 0, err
			}
		default:
			return 0, 0, fmt.Errorf("%w: %v box before moov", ErrNotMP4, typ)
		}
		pos += boxSize
	}
	end = pos
	p := fragmentParser{tracks: [2]*track{video, audio}, strict: true}
	p.begin()
	var moof []byte
	for {
		typ, hdr, boxSize, err := readBoxHeader(r, pos, size)
		if err != nil {
			return 0, 0, err
		}
		switch typ {
		case typeMoof:
			if boxSize > maxMoofBytes {
				return end, duration, nil
			}
			mtyp, mhdr, mdatSize, err := readBoxHeader(r, pos+boxSize, size)
			if err != nil {
				return 0, 0, err
			}
			if mtyp != typeMdat {
				return end, duration, nil
			}
			if int64(cap(moof)) < boxSize {
				moof = make([]byte, boxSize)
			}
			moof = moof[:boxSize]
			if err := readAt(r, moof, pos); err != nil {
				return 0, 0, err
			}
			mdat := pos + boxSize
			p.count = 0
			if p.parseMoof(moof[hdr:], pos, mdat+mhdr, mdat+mdatSize) != nil {
				return end, duration, nil
			}
			pos = mdat + mdatSize
			end, duration = pos, p.duration()
			continue
		case typeFree, typeSkip, typeStyp, typeSidx, typePrft, typeEmsg, typeUUID, typeMfra, typeUdta:
			// Boxes a fragmented file may have between fragments; they do
			// not move the end, which is a fragment's.
			pos += boxSize
			continue
		}
		// The end of the file, a torn header or garbage.
		return end, duration, nil
	}
}

// duration is the end of the newest sample of any track parsed so far.
func (p *fragmentParser) duration() time.Duration {
	var d time.Duration
	for _, t := range p.tracks {
		if t == nil || !t.seen {
			continue
		}
		ts := int64(t.timescale)
		q, r := t.end/ts, t.end%ts
		if q < 0 {
			continue
		}
		// ticksToMs bounded every sample's time below 2^32 s, so the end,
		// one duration later, stays below 2^33 s: within time.Duration.
		d = max(d, time.Duration(q)*time.Second+time.Duration(r*int64(time.Second)/ts))
	}
	return d
}

// readBoxHeader reads the header of the box at pos. It returns type 0 if
// no whole box starts there: the file ends first, the header is torn, or
// the size is impossible (a size of 0, "to the end of the file", is taken
// as torn: this package never writes it, and a cut file cannot tell).
func readBoxHeader(r io.ReaderAt, pos, size int64) (typ boxType, hdr, boxSize int64, err error) {
	var h [16]byte
	if size-pos < 8 {
		return 0, 0, 0, nil
	}
	if err := readAt(r, h[:8], pos); err != nil {
		return 0, 0, 0, err
	}
	boxSize, hdr = int64(binary.BigEndian.Uint32(h[:])), 8
	if boxSize == 1 {
		if size-pos < 16 {
			return 0, 0, 0, nil
		}
		if err := readAt(r, h[8:], pos+8); err != nil {
			return 0, 0, 0, err
		}
		big := binary.BigEndian.Uint64(h[8:])
		if big > uint64(size) {
			return 0, 0, 0, nil
		}
		boxSize, hdr = int64(big), 16
	}
	if boxSize < hdr || boxSize > size-pos {
		return 0, 0, 0, nil
	}
	return boxType(binary.BigEndian.Uint32(h[4:])), hdr, boxSize, nil
}

// readAt fills p from off. The callers read only within the size they were
// given, so a file that ends sooner is damaged (ErrNotMP4); io.EOF with p
// filled, which io.ReaderAt allows at the very end, is success.
func readAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	switch {
	case n == len(p):
		return nil
	case err == io.EOF || err == io.ErrUnexpectedEOF || err == nil:
		return fmt.Errorf("%w: file shorter than its size", ErrNotMP4)
	}
	return err
}
