package recording

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"roomrec"
	"roomrec/bilibili/danmaku"
	"roomrec/recording/flv"
)

// diskHealthyAfter is how much a file must take after a disk error before
// the disk counts as healthy again. A nearly full disk accepts a header and
// then fails; declaring it healthy at once would report the same full disk
// over and over.
const diskHealthyAfter = 256 << 10

// File is what a video file is written through: sequentially, plus one
// write in place at the end for the final metadata, and a Sync before it
// is renamed to its final name.
type File interface {
	io.Writer
	io.WriterAt
	io.Closer
	Truncate(size int64) error
	Sync() error
}

// createFile creates path, failing if it exists: a name is never reused,
// so no recording is ever overwritten.
func createFile(path string) (File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
}

// errDiskFloor is the disk guard refusing to start a file.
var errDiskFloor = errors.New("free space is below the floor")

// FreeSpace returns the bytes available to roomrec under dir.
func FreeSpace(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// diskError marks a failure to create, write or rename a file, as opposed to
// a network failure: the task reports it and waits instead of reconnecting.
type diskError struct{ err error }

func (e *diskError) Error() string { return "disk: " + e.err.Error() }
func (e *diskError) Unwrap() error { return e.err }

// formatError is a stream the file's writer cannot hold (a codec its
// container has no place for): retrying at once would only fail again.
type formatError struct{ err error }

func (e *formatError) Error() string { return "stream cannot be written: " + e.err.Error() }
func (e *formatError) Unwrap() error { return e.err }

// watchedFile remembers whether a write to the file failed, so that a
// writer's error can be told apart: the disk's, or the stream's.
type watchedFile struct {
	File
	mu  sync.Mutex
	err error
}

func (f *watchedFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	f.note(err)
	return n, err
}

func (f *watchedFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	f.note(err)
	return n, err
}

func (f *watchedFile) note(err error) {
	if err != nil {
		f.mu.Lock()
		if f.err == nil {
			f.err = err
		}
		f.mu.Unlock()
	}
}

func (f *watchedFile) failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err != nil
}

func disk(err error) error {
	if err == nil {
		return nil
	}
	return &diskError{err: err}
}

// fileSink receives repaired tags and turns them into files: it opens a file
// when the first tag for it arrives (so a stream that sends nothing leaves no
// empty file), writes danmaku beside it, and finishes, renames and announces
// each file when the repairer moves on or the download ends.
type fileSink struct {
	t         *Task
	liveStart time.Time      // the broadcast's
	report    func(progress) // tells the run loop what made and stream are now

	mu     sync.Mutex // guards cur against saveDanmaku from the watcher
	cur    *openFile
	made   tally          // the broadcast's, counted on from what earlier downloads made
	stream Stream         // what the next file is made from
	covers sync.WaitGroup // cover downloads, waited for at close
	// broadcastBytes is the broadcast's bytes as the sink knows them,
	// the open file included, for Task.Info: the loop's count lags by a
	// progress report, and Info must not dip while a closed file's size
	// is on its way there.
	broadcastBytes atomic.Int64
}

// openFile is a video file being written and its danmaku file.
type openFile struct {
	rel     string // final path relative to the recordings directory
	abs     string // final absolute path, without .part
	part    int
	title   string
	opened  time.Time
	file    *watchedFile
	video   mediaWriter
	danmaku *danmakuWriter
	healthy bool // has written diskHealthyAfter bytes
	// The newest tag written, for placing danmaku: its timestamp in the
	// file and when it was written.
	lastTs time.Duration
	lastAt time.Time
}

func newFileSink(t *Task, liveStart time.Time, made tally, report func(progress)) *fileSink {
	fs := &fileSink{t: t, liveStart: liveStart, made: made, report: report}
	fs.broadcastBytes.Store(made.bytes)
	return fs
}

// reportProgress tells the run loop what the sink has made; fs.mu is held.
func (fs *fileSink) reportProgress() {
	fs.report(progress{made: fs.made, stream: fs.stream})
}

// WriteTag writes a tag to the current file, opening one first if needed.
func (fs *fileSink) WriteTag(tag *flv.Tag) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.cur == nil {
		if err := fs.open(tag); err != nil {
			return err
		}
	}
	if err := fs.cur.video.WriteTag(tag); err != nil {
		if fs.cur.file.failed() {
			return disk(err)
		}
		// The writer refused the stream, not the disk: a codec or shape
		// it cannot put in its container.
		return &formatError{err: err}
	}
	fs.cur.lastTs, fs.cur.lastAt = time.Duration(tag.Timestamp)*time.Millisecond, time.Now()
	fs.broadcastBytes.Store(fs.made.bytes + fs.cur.video.Written())
	if !fs.cur.healthy && fs.cur.video.Written() >= diskHealthyAfter {
		fs.cur.healthy = true
		fs.t.recovered(ErrorDisk, sourceDownload)
	}
	return nil
}

// setStream notes the stream the download reads now, for the files it
// opens.
func (fs *fileSink) setStream(s Stream) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.stream = s
	fs.reportProgress()
}

// flush writes what the current file's writer holds and can write whole.
// The HLS reader calls it after each segment, a second of media that came
// at once: on disk then, not when the next segment comes.
func (fs *fileSink) flush() error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.cur == nil {
		return nil
	}
	return disk(fs.cur.video.Flush())
}

// NextFile finishes the current file; the next tag opens a new one.
func (fs *fileSink) NextFile(reason flv.SplitReason) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.t.log.Info("starting a new file", slog.String(roomrec.KeyReason, reason.String()))
	return fs.finish(false)
}

// close finishes the current file at the end of a download.
func (fs *fileSink) close(interrupted bool) error {
	fs.mu.Lock()
	err := fs.finish(interrupted)
	fs.mu.Unlock()
	fs.covers.Wait()
	return err
}

func (fs *fileSink) saveDanmaku(ev danmaku.Event) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.cur == nil || fs.cur.danmaku == nil {
		return
	}
	if err := fs.cur.danmaku.write(ev, fs.cur.mediaNow(time.Now()), fs.t.opts.Now()); err != nil {
		// Losing chat is bad, losing video is worse: stop writing danmaku
		// for this file and let the video carry on.
		fs.t.log.Warn("danmaku file failed; continuing without it", roomrec.LogErr(err))
		fs.cur.danmaku.abandon()
		fs.cur.danmaku = nil
	}
}

// maxDanmakuLead bounds how far past the newest written frame a danmaku is
// placed: while the stream is cut, time passes but the file gains no
// picture (the repair squeezes the gap out), so what viewers type then
// belongs at the cut.
const maxDanmakuLead = time.Second

// mediaNow is the position in the file that now corresponds to: the newest
// frame's timestamp plus the time since it was written, within
// maxDanmakuLead. Wall time since the file opened would drift later by
// every gap a reconnect squeezes out.
func (f *openFile) mediaNow(now time.Time) time.Duration {
	if f.lastAt.IsZero() {
		return 0
	}
	return f.lastTs + min(max(now.Sub(f.lastAt), 0), maxDanmakuLead)
}

// open starts a file for the stream whose first tag is first: the
// repairer starts every file with the video sequence header, which says
// the codec and so, with Options.Container, the container.
func (fs *fileSink) open(first *flv.Tag) error {
	t := fs.t
	now := t.opts.Now()
	st := t.state.Load()
	fs.made.parts++
	fs.reportProgress()
	room, title, cover, part := st.room, st.title, st.cover, fs.made.parts

	name := FileName{
		RoomID: room.RoomID, ShortID: room.ShortID, Anchor: room.Anchor, Title: title,
		Start: now.In(t.opts.Location), Part: part,
	}.Render(t.opts.FileTemplate)
	roomDir := strconv.FormatInt(room.RoomID, 10)
	if err := os.MkdirAll(filepath.Join(t.opts.Dir, roomDir), 0o755); err != nil {
		return disk(err)
	}
	if floor := t.opts.MinFreeBytes; floor > 0 {
		if free, err := t.opts.DiskFree(t.opts.Dir); err == nil && free < floor {
			return disk(fmt.Errorf("%w: %d MiB free, the floor is %d MiB", errDiskFloor, free>>20, floor>>20))
		}
	}
	container := t.opts.Container.For(first)
	rel := path.Join(roomDir, name+container.ext())
	abs := filepath.Join(t.opts.Dir, filepath.FromSlash(rel))
	f, err := t.opts.CreateFile(abs + PartSuffix)
	if err != nil {
		return disk(err)
	}
	wf := &watchedFile{File: f}
	cur := &openFile{rel: rel, abs: abs, part: part, title: title, opened: now, file: wf, video: container.newWriter(wf)}
	if err := cur.video.WriteHeader(); err != nil {
		f.Close()
		os.Remove(abs + PartSuffix)
		return disk(err)
	}
	base := trimExt(abs)
	if dw, err := newDanmakuWriter(DanmakuPath(abs)+PartSuffix, room, title, now); err != nil {
		t.log.Warn("cannot write danmaku file; recording video only", roomrec.LogErr(err))
	} else {
		cur.danmaku = dw
	}
	fs.cur = cur
	t.log.Info("file opened", slog.String(roomrec.KeyPath, rel))
	t.publish(FileOpened{Room: room, LiveStart: fs.liveStart, Path: rel, Part: part, Title: title, Opened: now, Stream: fs.stream})
	if part == 1 && cover != "" {
		fs.covers.Go(func() { fs.saveCover(cover, base) })
	}
	return nil
}

// finish completes the current file: final metadata, sync, close, rename,
// sync of the directory, event. Only a file that got through all of them
// is announced without an Err; any other stays where it is on disk (under
// .part unless the rename happened) for the crash repair of the next start.
func (fs *fileSink) finish(interrupted bool) error {
	cur := fs.cur
	if cur == nil {
		return nil
	}
	fs.cur = nil
	t := fs.t
	stats, err := cur.video.Finish()
	// unfinished is why the file is not durable under its final name.
	var unfinished error
	where := cur.abs + PartSuffix
	if complete := cur.video.Complete(); complete < cur.video.Written() {
		// A write failed part way (a full disk): cut the torn tag off so
		// the file ends on a whole one.
		unfinished = cur.file.Truncate(complete)
	}
	if unfinished == nil {
		where, unfinished = commitFile(cur.file, where, cur.abs, syncDir)
	} else {
		cur.file.Close()
	}
	if err == nil {
		err = unfinished
	}
	rel := cur.rel
	if where != cur.abs {
		rel += PartSuffix
	}
	danmakuRel := ""
	if cur.danmaku != nil {
		if derr := cur.danmaku.close(); derr != nil {
			t.log.Warn("danmaku file not finished", roomrec.LogErr(derr))
		} else {
			danmakuRel = DanmakuPath(cur.rel)
		}
	}
	closed := t.opts.Now()
	t.opts.stats.bytesWritten.Add(stats.Size)
	t.opts.stats.files.Add(1)
	fs.made.files++
	fs.made.bytes += stats.Size
	fs.broadcastBytes.Store(fs.made.bytes)
	fs.reportProgress()
	room := t.Room()
	if unfinished != nil {
		t.log.Error("file not finished; the crash check at the next start will finish it",
			slog.String(roomrec.KeyPath, rel), roomrec.LogErr(unfinished))
	} else {
		t.log.Info("file closed", slog.String(roomrec.KeyPath, rel), slog.Int64(roomrec.KeyBytes, stats.Size), slog.Duration(roomrec.KeyDuration, stats.Duration))
	}
	t.publish(FileClosed{
		Room: room, LiveStart: fs.liveStart, Path: rel, DanmakuPath: danmakuRel, Part: cur.part,
		Title: cur.title, Size: stats.Size, Duration: stats.Duration, Opened: cur.opened, Closed: closed,
		Interrupted: interrupted || err != nil, Err: unfinished,
	})
	return disk(err)
}

// saveCover downloads the room's cover beside the first file of a
// broadcast. It is best effort: a missing cover is logged, not reported.
func (fs *fileSink) saveCover(url, base string) {
	t := fs.t
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := t.opts.HTTPClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("cover answered %s", resp.Status)
		}
		// Only an extension SideFiles names, so the cover goes when its
		// recording does.
		ext := coverExt(req.URL.Path)
		tmp := base + ext + PartSuffix
		f, err := os.Create(tmp)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, io.LimitReader(resp.Body, 20<<20)); err != nil {
			f.Close()
			os.Remove(tmp)
			return err
		}
		if where, err := commitFile(f, tmp, base+ext, syncDir); err != nil {
			if where == tmp {
				os.Remove(tmp)
			}
			return err
		}
		return nil
	}()
	if err != nil && !errors.Is(err, context.Canceled) {
		t.log.Warn("cover not saved", roomrec.LogErr(err))
	}
}

func trimExt(p string) string {
	return p[:len(p)-len(filepath.Ext(p))]
}
