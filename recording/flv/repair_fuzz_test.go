package flv

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
	"time"
)

// FuzzRepairer feeds the Repairer broadcasts made from the fuzz bytes (see
// broadcast) and reads back every file it writes through a FileWriter. The
// tags are the samples' real tags and made-up ones, in any order, with any
// timestamps the Reader can produce: small steps either way, jumps of any
// size, new clocks. Codec changes, late audio, end-of-sequence markers,
// replays and reconnects (StreamRestarted) come anywhere, and the split
// limits are picked too. For each file it asserts what repair.go promises:
//
//   - it reads back with the Reader, header and whole tags up to io.EOF,
//     and is as long as its FileStats say;
//   - it opens with the FileWriter's onMetaData, then the video sequence
//     header, then the audio one if the file has audio, all at 0, then a
//     video keyframe at 0;
//   - after that come only audio and video frames: no script tag, no
//     sequence header (a new one starts a new file), no end-of-sequence
//     marker, and audio only in a file that opened with an audio header;
//   - each stream's timestamps never go back, in the order the tags are
//     written. Audio against video may: the rule is per stream, which is
//     what players need;
//   - no timestamp jumps: every tag is at most jumpThreshold past the
//     largest timestamp before it in the file, since retime turns a larger
//     step, either way, into one frame.
func FuzzRepairer(f *testing.F) {
	// The pool holds sample_a's tags, then sample_b's from na on.
	pool, na := samplePool(f)
	var keys []int // sample_a's keyframes
	for i, t := range pool[:na] {
		if t.IsKeyframe() && !t.IsSequenceHeader() {
			keys = append(keys, i)
		}
	}
	k := keys[1]
	for _, p := range []*program{
		// One clean connection.
		newProgram(0).restart().run(k + 20),
		// A reconnect replaying the last GOP, on the same clock.
		newProgram(0).restart().run(k + 10).restart().seek(0).run(3).seek(k).run(30),
		// The same with a new clock.
		newProgram(0).restart().run(k + 10).restart().seek(k).clock(900000).seek(0).run(3).seek(k).run(30),
		// Jumps back and forward, and small steps either way.
		newProgram(0).restart().run(60).shift(-3000).run(40).shift(10000).run(40).jitter(-100).jitter(100).jitter(0),
		// A codec change: sample_b's headers after sample_a.
		newProgram(0).restart().run(k + 20).seek(na).shift(20000).run(k + 20),
		// Splits by size, then by duration.
		newProgram(2).restart().run(keys[3] + 5),
		newProgram(2 << 2).restart().run(keys[3] + 5),
		// Audio that starts late, an end-of-sequence marker, the headers again.
		newProgram(0).restart().run(2).seek(3).run(60).seek(2).run(1).seek(63).run(40).
			seek(na - 1).run(1).seek(0).run(3).seek(103).run(20),
		// Made-up tags: another AVC header and a keyframe for it, encrypted
		// audio, a script tag, replays.
		newProgram(0).restart().run(10).
			madeUp(TagVideo, 0, 0x17, 0, 1, 2, 3).
			madeUp(TagVideo, 40, 0x17, 1, 0, 0, 0, 9).
			madeUp(0x28, 1, 0xaf, 1, 5).
			madeUp(TagScript, 0, 2, 0, 1, 'x').
			replay(3).replay(0),
	} {
		f.Add(p.b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sink := &fileSink{}
		b := &broadcast{t: t, tape: tape(data), pool: pool, sink: sink}
		b.r = NewRepairer(sink, b.options())
		b.play()
		if err := sink.finish(); err != nil {
			t.Fatal(err)
		}
		for i, file := range sink.files {
			if size := sink.stats[i].Size; size != int64(file.Len()) {
				t.Errorf("file %d is %d bytes, its FileStats say %d", i, file.Len(), size)
			}
			checkRepaired(t, i, file.Bytes())
		}
	})
}

// samplePool returns the tags of sample_a then sample_b, in file order,
// and the index where sample_b's tags start.
func samplePool(t testing.TB) (pool []*Tag, b int) {
	for _, name := range []string{"sample_a.flv", "sample_b.flv"} {
		b = len(pool)
		r := NewReader(bytes.NewReader(readSampleFile(t, name)))
		if _, err := r.ReadHeader(); err != nil {
			t.Fatal(err)
		}
		for {
			tag, err := r.ReadTag()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			pool = append(pool, tag.Clone())
		}
	}
	return pool, b
}

// checkRepaired checks one file the Repairer wrote; see FuzzRepairer.
func checkRepaired(t *testing.T, n int, data []byte) {
	r := NewReader(bytes.NewReader(data))
	if _, err := r.ReadHeader(); err != nil {
		t.Fatalf("file %d: %v", n, err)
	}
	var (
		audio  bool     // the file opened with an audio header
		opened bool     // its first keyframe is read
		last   [2]int64 // per stream: audio, video
		latest int64
	)
	for i := 0; ; i++ {
		tag, err := r.ReadTag()
		if err == io.EOF {
			if !opened {
				t.Fatalf("file %d has no keyframe", n)
			}
			return
		}
		if err != nil {
			t.Fatalf("file %d, tag %d: %v", n, i, err)
		}
		switch {
		case i == 0:
			if tag.Type != TagScript || tag.Timestamp != 0 {
				t.Fatalf("file %d opens with a %s tag at %d, want onMetaData at 0", n, tag.Type, tag.Timestamp)
			}
			continue
		case i == 1:
			if tag.Type != TagVideo || !tag.IsSequenceHeader() || tag.Timestamp != 0 {
				t.Fatalf("file %d: tag 1 is %s at %d, want the video sequence header at 0", n, tag.Type, tag.Timestamp)
			}
		case i == 2 && tag.Type == TagAudio && tag.IsSequenceHeader():
			if tag.Timestamp != 0 {
				t.Fatalf("file %d: audio sequence header at %d, want 0", n, tag.Timestamp)
			}
			audio = true
		case !opened:
			if !tag.IsKeyframe() || tag.IsSequenceHeader() || tag.Timestamp != 0 {
				t.Fatalf("file %d: tag %d is %s at %d, want a keyframe at 0 after the headers", n, i, tag.Type, tag.Timestamp)
			}
			opened = true
		case tag.Type != TagAudio && tag.Type != TagVideo:
			t.Fatalf("file %d: tag %d is a %s tag", n, i, tag.Type)
		case tag.IsSequenceHeader() || tag.IsEndOfSequence():
			t.Fatalf("file %d: tag %d is a %s sequence header or end marker in the middle", n, i, tag.Type)
		case tag.Type == TagAudio && !audio:
			t.Fatalf("file %d: tag %d is audio in a file without an audio header", n, i)
		}
		stream := 0
		if tag.Type == TagVideo {
			stream = 1
		}
		if tag.Timestamp < last[stream] {
			t.Fatalf("file %d: %s tag %d at %d goes back from %d", n, tag.Type, i, tag.Timestamp, last[stream])
		}
		if tag.Timestamp > latest+jumpThreshold {
			t.Fatalf("file %d: tag %d at %d jumps from %d", n, i, tag.Timestamp, latest)
		}
		last[stream], latest = tag.Timestamp, max(latest, tag.Timestamp)
	}
}

// tape hands out fuzz bytes, then zeros once they run out.
type tape []byte

func (t *tape) done() bool { return len(*t) == 0 }

func (t *tape) byte() byte {
	if t.done() {
		return 0
	}
	b := (*t)[0]
	*t = (*t)[1:]
	return b
}

func (t *tape) bytes(n int) []byte {
	n = min(n, len(*t))
	b := (*t)[:n]
	*t = (*t)[n:]
	return b
}

func (t *tape) uint16() uint16 { return uint16(t.byte())<<8 | uint16(t.byte()) }

func (t *tape) uint32() uint32 { return uint32(t.uint16())<<16 | uint32(t.uint16()) }

// A broadcast program: its first byte picks the split limits (low two bits
// MaxFileBytes, the next two MaxFileDuration), then each step is an op byte
// and its operands.
const (
	opRestart = iota // StreamRestarted
	opRun            // n+1 (byte) pool tags from the cursor, at their own time plus the base
	opSeek           // move the cursor to pool tag u16
	opShift          // add a signed 16-bit number of ms to the base
	opClock          // set the base so the tag at the cursor is at any 32-bit time (u32)
	opMadeUp         // a tag of type byte and byte-many data bytes, a signed byte of ms after the last
	opReplay         // the tag fed n+1 (byte) tags ago, again, as it was
	opJitter         // the tag at the cursor, a signed byte of ms after the last
	opCount
)

var (
	fuzzFileBytes     = [4]int64{0, 1, 8 << 10, 64 << 10}
	fuzzFileDurations = [4]time.Duration{0, time.Millisecond, 500 * time.Millisecond, 2 * time.Second}
)

// broadcast plays a program into a Repairer.
type broadcast struct {
	t      *testing.T
	tape   tape
	r      *Repairer
	sink   *fileSink
	pool   []*Tag
	fed    []*Tag
	cursor int
	base   int64
	last   int64 // timestamp of the last tag fed
}

func (b *broadcast) options() RepairOptions {
	o := b.tape.byte()
	return RepairOptions{MaxFileBytes: fuzzFileBytes[o&3], MaxFileDuration: fuzzFileDurations[o>>2&3]}
}

// A broadcast ends after maxBroadcast tags or maxFiles files, a few GOPs
// and splits: longer ones reach no rule that shorter ones do not, and slow
// the fuzzer, which spends most of an exec starting files and most of its
// time minimizing each new input, in time quadratic in its length.
const (
	maxBroadcast = 300
	maxFiles     = 6
)

func (b *broadcast) over() bool {
	return len(b.fed) >= maxBroadcast || len(b.sink.files) >= maxFiles
}

func (b *broadcast) play() {
	for !b.tape.done() && !b.over() {
		switch b.tape.byte() % opCount {
		case opRestart:
			b.r.StreamRestarted()
		case opRun:
			for n := int(b.tape.byte()) + 1; n > 0 && !b.over(); n-- {
				t := b.pool[b.cursor]
				b.feed(t, t.Timestamp+b.base)
				b.cursor = (b.cursor + 1) % len(b.pool)
			}
		case opSeek:
			b.cursor = int(b.tape.uint16()) % len(b.pool)
		case opShift:
			b.base += int64(int16(b.tape.uint16()))
		case opClock:
			b.base = int64(int32(b.tape.uint32())) - b.pool[b.cursor].Timestamp
		case opMadeUp:
			typ, step := TagType(b.tape.byte()), int64(int8(b.tape.byte()))
			data := b.tape.bytes(int(b.tape.byte()))
			b.feed(&Tag{Type: typ, Data: data}, b.last+step)
		case opReplay:
			if back := int(b.tape.byte()) + 1; back <= len(b.fed) {
				t := b.fed[len(b.fed)-back]
				b.feed(t, t.Timestamp)
			}
		case opJitter:
			b.feed(b.pool[b.cursor], b.last+int64(int8(b.tape.byte())))
			b.cursor = (b.cursor + 1) % len(b.pool)
		}
	}
}

// feed gives the Repairer t at ts, wrapped to the 32 bits an FLV carries
// and read back as the Reader does.
func (b *broadcast) feed(t *Tag, ts int64) {
	c := *t
	c.Timestamp = int64(int32(uint32(ts)))
	b.fed = append(b.fed, &c)
	b.last = c.Timestamp
	if err := b.r.Feed(&c); err != nil {
		b.t.Fatal(err)
	}
}

// program writes a broadcast program, for seeds.
type program struct{ b []byte }

func newProgram(options byte) *program { return &program{b: []byte{options}} }

func (p *program) op(op byte, operands ...byte) *program {
	p.b = append(append(p.b, op), operands...)
	return p
}

func (p *program) restart() *program { return p.op(opRestart) }

// run feeds n pool tags from the cursor, in as many steps as it takes.
func (p *program) run(n int) *program {
	for ; n > 0; n -= 256 {
		p.op(opRun, byte(min(n, 256)-1))
	}
	return p
}

func (p *program) seek(i int) *program {
	return p.op(opSeek, binary.BigEndian.AppendUint16(nil, uint16(i))...)
}

func (p *program) shift(ms int16) *program {
	return p.op(opShift, binary.BigEndian.AppendUint16(nil, uint16(ms))...)
}

func (p *program) clock(ms int32) *program {
	return p.op(opClock, binary.BigEndian.AppendUint32(nil, uint32(ms))...)
}

func (p *program) madeUp(typ TagType, step int8, data ...byte) *program {
	return p.op(opMadeUp, append([]byte{byte(typ), byte(step), byte(len(data))}, data...)...)
}

func (p *program) replay(back byte) *program { return p.op(opReplay, back) }

func (p *program) jitter(step int8) *program { return p.op(opJitter, byte(step)) }
