package danmaku

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// The fixtures below are packets laid out byte for byte as Bilibili sends
// them (header fields, versions and ops as the website's client sees them).
// They were written by hand from the protocol, not captured: this machine
// has no network.
const (
	// op 8 auth reply, version 1, body {"code":0}
	authReplyHex = "0000001a001000010000000800000001" + "7b22636f6465223a307d"
	// op 3 heartbeat reply, version 1, popularity 1337
	heartbeatReplyHex = "00000014001000010000000300000000" + "00000539"
	// op 7 auth, version 1
	authHex = "00000034001000010000000700000001" + "7b22756964223a302c22726f6f6d6964223a353434302c2270726f746f766572223a337d"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeAll(t *testing.T, frame []byte) ([]Packet, error) {
	t.Helper()
	var d Decoder
	var got []Packet
	err := d.Decode(frame, func(p Packet) error {
		p.Body = append([]byte(nil), p.Body...)
		got = append(got, p)
		return nil
	})
	return got, err
}

func TestDecodeFixtures(t *testing.T) {
	live := []byte(`{"cmd":"LIVE","live_key":"531937263129478410","roomid":5440,"live_time":1732400000}`)
	danmu := []byte(`{"cmd":"DANMU_MSG:4:0:2:2:2:0","info":[[0,1,25,16777215,1732400123456],"hi",[1,"u"]]}`)
	msg := func(b []byte) Packet { return Packet{Version: VersionJSON, Op: OpMessage, Body: b} }
	brotliBatch, err := EncodeBatch(VersionBrotli, msg(danmu), msg(live), msg(danmu))
	if err != nil {
		t.Fatal(err)
	}
	zlibBatch, err := EncodeBatch(VersionZlib, msg(live))
	if err != nil {
		t.Fatal(err)
	}
	two := AppendPacket(AppendPacket(nil, msg(danmu)), msg(live))

	tests := []struct {
		name  string
		frame []byte
		want  []Packet
	}{
		{"auth reply", mustHex(t, authReplyHex), []Packet{{Version: VersionInt, Op: OpAuthReply, Seq: 1, Body: []byte(`{"code":0}`)}}},
		{"heartbeat reply", mustHex(t, heartbeatReplyHex), []Packet{{Version: VersionInt, Op: OpHeartbeatReply, Body: []byte{0, 0, 5, 0x39}}}},
		{"auth", mustHex(t, authHex), []Packet{{Version: VersionInt, Op: OpAuth, Seq: 1, Body: []byte(`{"uid":0,"roomid":5440,"protover":3}`)}}},
		{"bare message", AppendPacket(nil, msg(danmu)), []Packet{msg(danmu)}},
		{"two packets in one frame", two, []Packet{msg(danmu), msg(live)}},
		{"zlib batch", zlibBatch, []Packet{msg(live)}},
		{"LIVE hidden in a brotli batch", brotliBatch, []Packet{msg(danmu), msg(live), msg(danmu)}},
		{"batch then bare in one frame", append(append([]byte(nil), zlibBatch...), AppendPacket(nil, msg(danmu))...), []Packet{msg(live), msg(danmu)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeAll(t, tt.frame)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d packets, want %d", len(got), len(tt.want))
			}
			for i := range got {
				g, w := got[i], tt.want[i]
				if g.Version != w.Version || g.Op != w.Op || g.Seq != w.Seq || !bytes.Equal(g.Body, w.Body) {
					t.Errorf("packet %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestAppendPacketMatchesWire(t *testing.T) {
	got := AppendPacket(nil, Packet{Version: VersionInt, Op: OpAuthReply, Seq: 1, Body: []byte(`{"code":0}`)})
	if want := mustHex(t, authReplyHex); !bytes.Equal(got, want) {
		t.Errorf("AppendPacket = %x, want %x", got, want)
	}
}

func header(size uint32, hlen uint16, version Version, op Op) []byte {
	h := make([]byte, 16)
	binary.BigEndian.PutUint32(h[0:], size)
	binary.BigEndian.PutUint16(h[4:], hlen)
	binary.BigEndian.PutUint16(h[6:], uint16(version))
	binary.BigEndian.PutUint32(h[8:], uint32(op))
	return h
}

func TestDecodeMalformed(t *testing.T) {
	good := AppendPacket(nil, Packet{Version: VersionJSON, Op: OpMessage, Body: []byte(`{"cmd":"X"}`)})
	nested, _ := EncodeBatch(VersionZlib, Packet{Version: VersionJSON, Op: OpMessage, Body: []byte(`{}`)})
	doubly, _ := EncodeBatch(VersionBrotli, Packet{Version: VersionZlib, Op: OpMessage, Body: nested[16:]})
	tests := []struct {
		name  string
		frame []byte
	}{
		{"shorter than a header", good[:10]},
		{"length below 16", append(header(8, 16, VersionJSON, OpMessage), 'x')},
		{"length past the buffer", header(100, 16, VersionJSON, OpMessage)},
		{"header length not 16", append(header(20, 12, VersionJSON, OpMessage), "abcd"...)},
		{"absurd length", header(1<<31, 16, VersionJSON, OpMessage)},
		{"bad zlib", append(header(20, 16, VersionZlib, OpMessage), "abcd"...)},
		{"bad brotli", append(header(20, 16, VersionBrotli, OpMessage), 0xff, 0xff, 0xff, 0xff)},
		{"trailing garbage after a good packet", append(append([]byte(nil), good...), 1, 2, 3)},
		{"batch inside a batch", doubly},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeAll(t, tt.frame)
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("Decode = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestDecodeRefusesDecompressionBomb(t *testing.T) {
	// 16 MiB of zeros compresses to a few KiB; expanding it all would be
	// far more than the frame justifies.
	huge := Packet{Version: VersionJSON, Op: OpMessage, Body: make([]byte, MaxDecompressedLen+1<<16)}
	frame, err := EncodeBatch(VersionZlib, huge)
	if err != nil {
		t.Fatal(err)
	}
	if len(frame) > 1<<20 {
		t.Fatalf("bomb is %d bytes; the test wants a small frame", len(frame))
	}
	_, err = decodeAll(t, frame)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "limit") {
		t.Errorf("Decode = %v, want a limit error", err)
	}
}

func TestDecoderStopsOnCallbackError(t *testing.T) {
	frame := AppendPacket(AppendPacket(nil, Packet{Op: OpMessage}), Packet{Op: OpMessage})
	stop := errors.New("stop")
	calls := 0
	var d Decoder
	err := d.Decode(frame, func(Packet) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("err = %v after %d calls, want the callback's error after 1", err, calls)
	}
}

func FuzzDecode(f *testing.F) {
	batch, _ := EncodeBatch(VersionBrotli, Packet{Op: OpMessage, Body: []byte(`{"cmd":"LIVE","roomid":1}`)})
	zbatch, _ := EncodeBatch(VersionZlib, Packet{Op: OpMessage, Body: []byte(`{"cmd":"PREPARING","roomid":"1"}`)})
	for _, seed := range [][]byte{
		batch, zbatch, {},
		AppendPacket(nil, Packet{Version: VersionInt, Op: OpHeartbeatReply, Body: []byte{0, 0, 0, 1}}),
		header(16, 16, VersionJSON, OpMessage),
		header(1<<31, 16, VersionBrotli, OpMessage),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		var d Decoder
		total := 0
		err := d.Decode(frame, func(p Packet) error {
			total += HeaderLen + len(p.Body)
			if p.Version == VersionZlib || p.Version == VersionBrotli {
				t.Fatalf("compressed packet delivered undecoded")
			}
			return nil
		})
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
		if total > len(frame)+MaxDecompressedLen {
			t.Fatalf("delivered %d bytes from a %d-byte frame", total, len(frame))
		}
	})
}
