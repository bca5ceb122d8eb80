package flv

import (
	"bytes"
	"hash/maphash"
	"log/slog"
	"time"
)

// SplitReason says why the Repairer asked for a new file.
type SplitReason int

const (
	SplitCodecChange SplitReason = iota + 1 // a new, different sequence header
	SplitSize                               // MaxFileBytes reached
	SplitDuration                           // MaxFileDuration reached
)

func (r SplitReason) String() string {
	switch r {
	case SplitCodecChange:
		return "codec change"
	case SplitSize:
		return "size limit"
	case SplitDuration:
		return "duration limit"
	}
	return "unknown"
}

// Sink receives what the Repairer makes of a stream. Package recording
// implements it with files.
type Sink interface {
	// WriteTag writes a repaired tag to the current file. The tag and its
	// data are only valid during the call.
	WriteTag(t *Tag) error
	// NextFile ends the current file; the next WriteTag starts a new one.
	NextFile(reason SplitReason) error
}

// RepairOptions tune a Repairer.
type RepairOptions struct {
	MaxFileBytes    int64         // split on the first keyframe past this size; 0 = never
	MaxFileDuration time.Duration // split on the first keyframe past this media duration; 0 = never
	Logger          *slog.Logger
}

// RepairStats counts what a Repairer did, for logs.
type RepairStats struct {
	Tags, Dropped, Duplicates, Jumps, Splits int
}

// jumpThreshold is the largest timestamp step treated as the stream's own
// timing; a larger step, either way, is a discontinuity to smooth over.
const jumpThreshold = 500

// recentTags is how many written tags are remembered to recognise the
// replay a CDN sends after a reconnect: its GOP cache, a few seconds.
const recentTags = 1024

// Repairer turns the tags of one broadcast, across any number of stream
// connections, into files that play: each file starts with the sequence
// headers and a keyframe at timestamp 0; timestamps never go back and never
// jump; the replay after a reconnect is dropped; a codec change starts a new
// file; the stream's own onMetaData is dropped (the FileWriter writes its
// own). It is a pipeline of small rules applied in Feed.
type Repairer struct {
	sink Sink
	opts RepairOptions
	log  *slog.Logger
	out  Tag // reused for every tag handed to the sink

	// Codec configuration of the current file; owned copies.
	videoHeader, audioHeader []byte
	// The file in progress.
	fileOpen   bool  // headers and the first keyframe written
	fileBytes  int64 // bytes of tags written to it
	splitAsked SplitReason
	// Timestamps: out = in + offset, per the rules in retime.
	offset, lastIn, maxOut int64
	lastOut                [2]int64 // per stream: audio, video
	frame                  int64    // observed video frame duration
	haveLast               bool
	// Replay detection after StreamRestarted.
	seed     maphash.Seed
	recent   [recentTags]tagPrint
	next     int // where the next print goes in recent
	filled   int
	replay   bool // checking for the replay of a new connection
	matchAt  int  // in replay: index in recent of the next expected print, -1 before the first match
	newConns int

	stats RepairStats
}

// tagPrint identifies a written tag's content.
type tagPrint struct {
	typ  TagType
	size int
	sum  uint64
}

// NewRepairer returns a Repairer writing to sink.
func NewRepairer(sink Sink, opts RepairOptions) *Repairer {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Repairer{sink: sink, opts: opts, log: opts.Logger, seed: maphash.MakeSeed(), frame: 33}
}

// Stats returns what the Repairer has done so far.
func (r *Repairer) Stats() RepairStats { return r.stats }

// StreamRestarted tells the Repairer that the following tags come from a
// new connection, which repeats headers and replays recent frames.
func (r *Repairer) StreamRestarted() {
	r.newConns++
	if r.newConns > 1 && r.filled > 0 {
		r.replay, r.matchAt = true, -1
	}
}

// Feed takes the next tag of the stream. Its error is the sink's.
func (r *Repairer) Feed(t *Tag) error {
	r.stats.Tags++
	switch {
	case t.Type == TagScript:
		r.stats.Dropped++ // the FileWriter writes the file's own onMetaData
		return nil
	case t.Type != TagAudio && t.Type != TagVideo:
		r.stats.Dropped++
		return nil
	case t.IsSequenceHeader():
		return r.sequenceHeader(t)
	case t.IsEndOfSequence():
		// An encoder's "stream over" marker, repeated by a CDN at every
		// reconnect or restart; in the middle of a file it makes players
		// stop decoding.
		r.stats.Dropped++
		return nil
	}
	if r.replay && r.isReplay(t) {
		r.stats.Duplicates++
		return nil
	}
	return r.media(t)
}

// sequenceHeader applies a codec configuration: the same one again (every
// connection starts with it) changes nothing; a different one ends the file.
func (r *Repairer) sequenceHeader(t *Tag) error {
	cur := &r.videoHeader
	if t.Type == TagAudio {
		cur = &r.audioHeader
	}
	switch {
	case bytes.Equal(*cur, t.Data):
		return nil
	case *cur == nil && !r.fileOpen:
		// First header of this kind before the file has media.
	case *cur == nil && t.Type == TagAudio && r.fileOpen:
		// Audio that starts after video: a new file, so that file's
		// header lists both streams from its first tag.
		r.log.Info("audio started late; starting a new file")
		r.askSplit(SplitCodecChange)
	default:
		r.log.Info("codec configuration changed; starting a new file", slog.String("track", t.Type.String()))
		r.askSplit(SplitCodecChange)
	}
	*cur = append((*cur)[:0], t.Data...)
	return nil
}

// askSplit ends the current file now: the next file starts at the next
// keyframe with the headers known then.
func (r *Repairer) askSplit(reason SplitReason) {
	if r.fileOpen {
		r.splitAsked = reason
	}
}

// media handles an audio or video frame.
func (r *Repairer) media(t *Tag) error {
	if t.Type == TagAudio && r.audioHeader == nil {
		r.stats.Dropped++ // undecodable without its AudioSpecificConfig
		return nil
	}
	key := t.IsKeyframe()
	if key && r.fileOpen && r.splitAsked == 0 {
		switch {
		case r.opts.MaxFileBytes > 0 && r.fileBytes >= r.opts.MaxFileBytes:
			r.splitAsked = SplitSize
		case r.opts.MaxFileDuration > 0 && time.Duration(r.maxOut)*time.Millisecond >= r.opts.MaxFileDuration:
			r.splitAsked = SplitDuration
		}
	}
	if r.splitAsked != 0 && (key || t.Type == TagVideo) {
		// A split waits for a keyframe; with a codec change the frames in
		// between belong to neither file.
		if !key {
			r.stats.Dropped++
			return nil
		}
		if err := r.sink.NextFile(r.splitAsked); err != nil {
			return err
		}
		r.stats.Splits++
		r.fileOpen, r.splitAsked, r.fileBytes = false, 0, 0
	}
	if !r.fileOpen {
		// A file starts with the headers, then a keyframe at 0.
		if !key || r.videoHeader == nil {
			r.stats.Dropped++
			return nil
		}
		r.haveLast = false
		if err := r.write(TagVideo, 0, r.videoHeader); err != nil {
			return err
		}
		if r.audioHeader != nil {
			if err := r.write(TagAudio, 0, r.audioHeader); err != nil {
				return err
			}
		}
		r.fileOpen = true
	} else if r.splitAsked != 0 {
		r.stats.Dropped++ // audio waiting for the split's keyframe
		return nil
	}
	ts := r.retime(t)
	r.remember(t)
	return r.write(t.Type, ts, t.Data)
}

// retime maps an input timestamp to the file's timeline. The first frame of
// a file is at 0. A step of more than jumpThreshold either way (an encoder
// restart, a new connection with another base, a gap) continues one frame
// after the latest output instead. Small steps pass as they are, clamped so
// no stream goes back, since players reject that.
func (r *Repairer) retime(t *Tag) int64 {
	in := t.Timestamp
	switch {
	case !r.haveLast:
		r.offset, r.maxOut, r.lastOut = -in, 0, [2]int64{}
	case in-r.lastIn > jumpThreshold || r.lastIn-in > jumpThreshold:
		r.offset = r.maxOut + r.frame - in
		r.stats.Jumps++
	case t.Type == TagVideo && in > r.lastIn:
		r.frame = in - r.lastIn
	}
	out := max(in+r.offset, 0)
	stream := 0
	if t.Type == TagVideo {
		stream = 1
	}
	out = max(out, r.lastOut[stream])
	r.lastIn, r.haveLast = in, true
	r.lastOut[stream] = out
	r.maxOut = max(r.maxOut, out)
	return out
}

func (r *Repairer) write(typ TagType, ts int64, data []byte) error {
	r.out = Tag{Type: typ, Timestamp: ts, Data: data}
	r.fileBytes += int64(TagHeaderLen + len(data) + 4)
	return r.sink.WriteTag(&r.out)
}

// printEnds is how much of each end of a tag's data its print hashes.
// Hashing all of it cost a recording at disk speed more than any other
// work of its own (every tag is remembered, and an 8 Mbit/s stream's
// frames are 30 KB and more). A replay repeats tags byte for byte, and
// two different frames of one size almost never share their first and
// last KiB: the start holds the slice headers, with the frame's number
// and picture order, and the end its last macroblocks. Smaller tags are
// hashed whole.
const printEnds = 1024

func (r *Repairer) print(t *Tag) tagPrint {
	d := t.Data
	if len(d) <= 2*printEnds {
		return tagPrint{typ: t.Type, size: len(d), sum: maphash.Bytes(r.seed, d)}
	}
	var h maphash.Hash
	h.SetSeed(r.seed)
	h.Write(d[:printEnds])
	h.Write(d[len(d)-printEnds:])
	return tagPrint{typ: t.Type, size: len(d), sum: h.Sum64()}
}

// remember notes a written frame so its replay can be recognised.
func (r *Repairer) remember(t *Tag) {
	r.recent[r.next] = r.print(t)
	r.next = (r.next + 1) % recentTags
	r.filled = min(r.filled+1, recentTags)
}

// isReplay reports whether a frame of a new connection repeats what was
// already written. The replay is a run of the remembered frames in order:
// the first frame is looked up from the newest backwards, and each later
// one must be the next remembered frame. The first frame that breaks the
// run ends the check, and everything from it on is new.
func (r *Repairer) isReplay(t *Tag) bool {
	p := r.print(t)
	if r.matchAt < 0 {
		for i := 1; i <= r.filled; i++ {
			j := (r.next - i + recentTags) % recentTags
			if r.recent[j] == p {
				r.matchAt = (j + 1) % recentTags
				return true
			}
		}
		// The new connection starts past everything remembered: no replay.
		r.replay = false
		return false
	}
	if r.matchAt != r.next && r.recent[r.matchAt] == p {
		r.matchAt = (r.matchAt + 1) % recentTags
		return true
	}
	r.replay = false
	return false
}
