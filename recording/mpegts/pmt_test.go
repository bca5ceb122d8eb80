package mpegts

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// ffmpeg's TS muxer puts the video on PID 0x100 and the audio on 0x101.
const audioPID = 0x101

// dropPID returns seg without the packets of one PID.
func dropPID(seg []byte, drop uint16) []byte {
	var out []byte
	for p := range packets(seg) {
		if pid(p) != drop {
			out = append(out, p...)
		}
	}
	return out
}

func TestCRC32MPEGMatchesFFmpeg(t *testing.T) {
	// ffmpeg's PAT and PMT carry their CRCs; recomputing them gives the
	// same.
	n := 0
	for p := range packets(readFixture(t, "h264_0.ts")) {
		if pid(p) != 0 && pid(p) != 0x1000 { // ffmpeg's PMT PID
			continue
		}
		sec, ok := sectionIn(p)
		if !ok {
			t.Fatal("ffmpeg's PSI section not found in its packet")
		}
		body := sec[:len(sec)-4]
		if got, want := crc32MPEG(body), binary.BigEndian.Uint32(sec[len(sec)-4:]); got != want {
			t.Fatalf("CRC of table %d = %08x, ffmpeg wrote %08x", sec[0], got, want)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no PAT or PMT found")
	}
}

func TestAudioThatCannotBeOpened(t *testing.T) {
	seg := readFixture(t, "h264_0.ts")
	damaged := append([]byte(nil), seg...)
	for p := range packets(damaged) {
		if pid(p) == audioPID && p[1]&0x40 != 0 {
			// The first audio PES: break its first ADTS syncword.
			pes := p[4:]
			if p[3]&0x20 != 0 {
				pes = p[5+int(p[4]):]
			}
			pes[9+int(pes[8])] = 0
			break
		}
	}
	tests := []struct {
		name       string
		seg        []byte
		wantAudio  bool
		wantFrames int
	}{
		{"the program lists AAC but the segment has none", dropPID(seg, audioPID), false, 30},
		{"the first audio frame is damaged", damaged, false, 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tags, st := demux(t, tt.seg)
			if st.VideoFrames != tt.wantFrames || st.AudioFrames != 0 || st.AudioSkipped != 1 {
				t.Errorf("stats = %+v, want %d video frames read alone", st, tt.wantFrames)
			}
			if msg := decodeErrors(t, "-i", writeFLV(t, tags)); msg != "" {
				t.Errorf("ffmpeg cannot decode the FLV cleanly:\n%s", msg)
			}
		})
	}
	// The next, sound segment has its audio again.
	_, st := demux(t, dropPID(seg, audioPID), readFixture(t, "h264_1.ts"))
	if st.AudioFrames == 0 || st.AudioSkipped != 1 {
		t.Errorf("stats = %+v, want the audio of the second segment", st)
	}
}

func TestHideAudio(t *testing.T) {
	seg := readFixture(t, "h264_0.ts")
	hidden, ok := hideAudio(seg)
	if !ok || len(hidden) != len(seg) {
		t.Fatalf("hideAudio = %d bytes, %v", len(hidden), ok)
	}
	changed := 0
	for i := range seg {
		if seg[i] != hidden[i] {
			changed++
		}
	}
	// Per PMT packet: one stream type and four CRC bytes (at most).
	if changed == 0 || changed > 5*bytes.Count(seg, []byte{0x47, 0x50, 0x00}) {
		t.Errorf("%d bytes changed", changed)
	}
	for _, junk := range [][]byte{nil, []byte("not ts"), bytes.Repeat([]byte{0x47, 0x40, 0, 0x10, 0, 0}, 100)} {
		if _, ok := hideAudio(junk); ok {
			t.Errorf("hideAudio(%q...) found a program map", junk[:min(len(junk), 8)])
		}
	}
}
