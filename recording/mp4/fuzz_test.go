package mp4

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"roomrec/recording/flv"
)

// FuzzDemuxSegment feeds arbitrary bytes as a media segment after the
// H.264 fixture's init. Invariants:
//   - no panic;
//   - no huge allocation: at most maxSamples samples are held, and the tag
//     buffer never grows past twice the largest tag the input could hold;
//   - every emitted tag is a well-formed media tag (AVC frame with its
//     5-byte header, or AAC raw frame) whose payload came from the input;
//   - each track's DTS never decreases within the segment.
func FuzzDemuxSegment(f *testing.F) {
	fx := loadFixture(f, "h264")
	for _, s := range fx.segments[:2] {
		f.Add(s)
	}
	separate, err := os.ReadFile(filepath.Join("testdata", "separate.mp4"))
	if err != nil {
		f.Fatal(err)
	}
	_, _, initEnd, err := parseInit(separate)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(separate[initEnd : initEnd+4000])
	written, _ := writeMP4(f, fx.demux(f)[:30], false)
	_, _, initEnd, _ = parseInit(written)
	f.Add(written[initEnd:])
	f.Fuzz(func(t *testing.T, seg []byte) {
		var d Demuxer
		if _, err := d.Init(fx.init); err != nil {
			t.Fatal(err)
		}
		last := map[flv.TagType]int64{}
		n := 0
		err := d.Segment(seg, func(tag *flv.Tag) error {
			n++
			switch tag.Type {
			case flv.TagVideo:
				if len(tag.Data) < 5 || tag.Data[0]&0x0f != codecAVC || tag.Data[1] != 1 || (tag.Data[0]>>4 != 1 && tag.Data[0]>>4 != 2) {
					t.Fatalf("bad video tag %x", tag.Data[:min(5, len(tag.Data))])
				}
				// Checked on the first few only: a corrupt trun can name the
				// same bytes a hundred thousand times.
				if len(tag.Data)-5 > len(seg) || n <= 16 && !bytes.Contains(seg, tag.Data[5:]) {
					t.Fatal("video payload not from the input")
				}
			case flv.TagAudio:
				if len(tag.Data) < 2 || tag.Data[0] != 0xaf || tag.Data[1] != 1 {
					t.Fatalf("bad audio tag %x", tag.Data[:min(2, len(tag.Data))])
				}
			default:
				t.Fatalf("tag of type %v", tag.Type)
			}
			if prev, ok := last[tag.Type]; ok && tag.Timestamp < prev {
				t.Fatalf("%v DTS %d after %d", tag.Type, tag.Timestamp, prev)
			}
			last[tag.Type] = tag.Timestamp
			return nil
		})
		if err != nil && !errors.Is(err, errCorrupt) {
			t.Fatalf("error not marked corrupt: %v", err)
		}
		if n > maxSamples || cap(d.video.samples) > 2*maxSamples || cap(d.audio.samples) > 2*maxSamples {
			t.Fatalf("%d samples emitted, capacities %d and %d", n, cap(d.video.samples), cap(d.audio.samples))
		}
		if cap(d.buf) > 2*(len(seg)+5)+64 {
			t.Fatalf("tag buffer of %d bytes for a %d-byte segment", cap(d.buf), len(seg))
		}
	})
}

// FuzzScanComplete scans a real written file, cut short and corrupted
// arbitrarily. Invariants:
//   - no panic, and end <= size;
//   - an error is ErrNotMP4 with end 0 (a bytes.Reader fails no other way);
//   - otherwise the file up to end is the init and whole fragments: the
//     init reads with Demuxer.Init, and each moof and mdat pair after it
//     reads with Demuxer.Segment without error, in order;
//   - no sample the demuxer emits is later than the duration found.
func FuzzScanComplete(f *testing.F) {
	// Small files fuzz faster: the first 0.6 s of each fixture, with a
	// second keyframe so there are two fragments.
	for _, name := range fixtureNames {
		tags := loadFixture(f, name).demux(f)[:48]
		for i, tag := range tags {
			if i > 20 && tag.Type == flv.TagVideo {
				c := tag.Clone()
				c.Data[0] = 0x10 | c.Data[0]&0x0f
				tags[i] = c
				break
			}
		}
		file, _ := writeMP4(f, tags, false)
		f.Add(file, uint32(len(file)))
		f.Add(file, uint32(len(file)-100))
	}
	f.Fuzz(func(t *testing.T, data []byte, cut uint32) {
		data = data[:min(int(cut), len(data))]
		size := int64(len(data))
		end, dur, err := ScanComplete(bytes.NewReader(data), size)
		if end > size || end < 0 {
			t.Fatalf("end %d of %d", end, size)
		}
		if err != nil {
			if !errors.Is(err, ErrNotMP4) || end != 0 || dur != 0 {
				t.Fatalf("end %d, duration %v, %v", end, dur, err)
			}
			return
		}
		_, _, initEnd, err := parseInit(data)
		if err != nil || int64(initEnd) > end {
			t.Fatalf("scan found an init parseInit refuses (%v) or ends before it (%d > %d)", err, initEnd, end)
		}
		var d Demuxer
		if _, err := d.Init(data[:initEnd]); err != nil {
			t.Fatal(err)
		}
		rest := data[initEnd:end]
		for pos := 0; pos < len(rest); {
			typ, _, next, err := nextBox(rest, pos)
			if err != nil {
				t.Fatalf("box at %d: %v", initEnd+pos, err)
			}
			if typ != typeMoof {
				pos = next
				continue
			}
			mtyp, _, mnext, err := nextBox(rest, next)
			if err != nil || mtyp != typeMdat {
				t.Fatalf("moof at %d without its mdat: %v %v", initEnd+pos, mtyp, err)
			}
			err = d.Segment(rest[pos:mnext], func(tag *flv.Tag) error {
				if time.Duration(tag.Timestamp)*time.Millisecond > dur {
					t.Fatalf("sample at %d ms, past the duration %v", tag.Timestamp, dur)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("fragment at %d: %v", initEnd+pos, err)
			}
			pos = mnext
		}
	})
}

// FuzzWriterRoundTrip writes a tag stream made from the input and reads
// the file back. Invariants: whatever the writer accepts it writes so the
// reader returns the same frames (timestamps, keyframes, composition
// offsets, bytes); ScanComplete finds the whole file complete, with the
// duration Finish reported.
func FuzzWriterRoundTrip(f *testing.F) {
	tags := loadFixture(f, "h264").demux(f)
	headers := tags[:2]
	f.Add([]byte{0x10, 0, 0, 40, 0x02, 33, 0, 30, 0x12, 10, 0xf0, 20, 0x01, 21, 0, 9})
	f.Add(bytes.Repeat([]byte{0x10, 0, 1, 200, 0x02, 40, 0, 100, 0x22, 0, 0xfe, 7}, 20))
	f.Fuzz(func(t *testing.T, ops []byte) {
		in := append([]*flv.Tag(nil), headers...)
		var ts int64
		for i := 0; i+4 <= len(ops) && len(in) < 2000; i += 4 {
			kind, delta, cts, size := ops[i], ops[i+1], int8(ops[i+2]), int(ops[i+3])
			ts += int64(delta)
			data := make([]byte, 0, 5+size)
			switch kind & 0x03 {
			case 0:
				data = append(data, 0x17, 1)
			case 1:
				data = append(data, 0xaf, 1)
			default:
				data = append(data, 0x27, 1)
			}
			if data[0] != 0xaf {
				c := uint32(int32(cts) * 10)
				data = append(data, byte(c>>16), byte(c>>8), byte(c))
			}
			for j := range size {
				data = append(data, byte(i+j))
			}
			typ := flv.TagVideo
			if data[0] == 0xaf {
				typ = flv.TagAudio
			}
			in = append(in, &flv.Tag{Type: typ, Timestamp: ts, Data: data})
		}
		var file memFile
		w := NewFileWriter(&file, &file)
		for _, tag := range in {
			if err := w.WriteTag(tag); err != nil {
				t.Fatalf("write: %v", err) // the stream is valid: one clock, headers first
			}
		}
		st, err := w.Finish()
		if err != nil {
			t.Fatal(err)
		}
		var want []*flv.Tag
		for _, tag := range in {
			if tag.IsSequenceHeader() || len(tag.Data) > map[flv.TagType]int{flv.TagVideo: 5, flv.TagAudio: 2}[tag.Type] {
				want = append(want, tag)
			}
		}
		if len(want) == 2 {
			// Headers only: the init alone.
			if _, _, end, err := parseInit(file.Bytes()); err != nil || end != file.Len() {
				t.Fatalf("headers only: init %d of %d bytes, %v", end, file.Len(), err)
			}
			return
		}
		compareTags(t, readBack(t, file.Bytes()), want)
		end, dur, err := ScanComplete(bytes.NewReader(file.Bytes()), int64(file.Len()))
		if err != nil || end != int64(file.Len()) || dur != st.Duration {
			t.Fatalf("scan: end %d of %d, duration %v (writer %v), %v", end, file.Len(), dur, st.Duration, err)
		}
	})
}

// FuzzDemuxInit feeds arbitrary bytes as an init segment. Invariants: no
// panic; an error wraps ErrNotMP4; an accepted init yields a video
// sequence header of codec 7 or 12 and/or an AAC one, and those headers
// survive a trip through the writer: the init FileWriter makes from them
// reads back as the same headers.
func FuzzDemuxInit(f *testing.F) {
	for _, name := range fixtureNames {
		f.Add(loadFixture(f, name).init)
	}
	separate, err := os.ReadFile(filepath.Join("testdata", "separate.mp4"))
	if err != nil {
		f.Fatal(err)
	}
	_, _, initEnd, _ := parseInit(separate)
	f.Add(separate[:initEnd])
	f.Fuzz(func(t *testing.T, init []byte) {
		var d Demuxer
		headers, err := d.Init(init)
		if err != nil {
			if !errors.Is(err, ErrNotMP4) {
				t.Fatalf("error not ErrNotMP4: %v", err)
			}
			return
		}
		if len(headers) == 0 || len(headers) > 2 {
			t.Fatalf("%d headers", len(headers))
		}
		for _, h := range headers {
			if !h.IsSequenceHeader() {
				t.Fatalf("not a sequence header: %x", h.Data[:2])
			}
		}
		if headers[0].Type != flv.TagVideo {
			return // the writer needs video
		}
		var file memFile
		w := NewFileWriter(&file, &file)
		for _, h := range headers {
			if err := w.WriteTag(h); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := w.Finish(); err != nil {
			t.Fatal(err)
		}
		var back Demuxer
		again, err := back.Init(file.Bytes())
		if err != nil {
			t.Fatalf("own init refused: %v", err)
		}
		compareTags(t, again, headers)
	})
}
