package recording

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"roomrec"
	"roomrec/recording/flv"
	"roomrec/recording/mp4"
)

// Recovered is what Recover made of an interrupted video file.
type Recovered struct {
	Found       bool          // a file was left to finish; false: neither name exists
	Size        int64         // bytes in the finished file
	Duration    time.Duration // media duration up to the last whole tag
	Ended       time.Time     // when the file was last written before it stopped
	DanmakuPath string        // relative to the recordings directory; empty if none
}

// Recover finishes a video file that was being written when roomrec
// stopped (a crash, a kill, a finish that failed), given the recordings
// directory and the video's final path relative to it. An FLV file is cut
// back to its last whole tag, an MP4 file to its last whole fragment, so
// any player opens it; a file Recover cannot repair (no readable start,
// or a container it does not know) keeps its bytes as they are. The file is then synced, renamed from its .part
// name to its final one and the rename synced, as a file finished by a
// Task is; a file already under its final name (renamed before the crash)
// is synced again. Its danmaku XML is closed after its last whole line and
// finished the same way; a danmaku file that cannot be finished is logged
// and left out of the result.
//
// Recover returns Found false if neither name exists. It returns an error,
// leaving the file where it is, if the file cannot be opened, read, cut,
// synced or renamed.
func Recover(dir, rel string, log *slog.Logger) (Recovered, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !filepath.IsLocal(filepath.FromSlash(rel)) {
		return Recovered{}, fmt.Errorf("path %q leaves the recordings directory", rel)
	}
	final := filepath.Join(dir, filepath.FromSlash(rel))
	path := final + PartSuffix
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		path = final // renamed before the crash, but not yet indexed as finished
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return Recovered{}, nil
	}
	if err != nil {
		return Recovered{}, err
	}
	info, err := f.Stat()
	if err == nil && !info.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", path)
	}
	if err != nil {
		f.Close()
		return Recovered{}, err
	}
	size, dur, err := cutToWholeTags(f, info.Size(), path, log)
	if err != nil {
		f.Close()
		return Recovered{}, err
	}
	if _, err := commitFile(f, path, final, syncDir); err != nil {
		return Recovered{}, err
	}
	r := Recovered{Found: true, Size: size, Duration: dur, Ended: info.ModTime()}
	r.DanmakuPath = recoverDanmaku(dir, DanmakuPath(rel), log)
	return r, nil
}

// cutToWholeTags cuts a video file back to its last whole unit (an FLV
// tag, an MP4 fragment) and returns its new size and media duration. A
// file whose container it does not know, or whose start is not even
// whole, is left as it is, with no duration.
func cutToWholeTags(f *os.File, size int64, path string, log *slog.Logger) (int64, time.Duration, error) {
	var scan func(io.ReaderAt, int64) (int64, time.Duration, error)
	switch strings.ToLower(filepath.Ext(strings.TrimSuffix(path, PartSuffix))) {
	case ".flv":
		scan = func(r io.ReaderAt, size int64) (int64, time.Duration, error) {
			end, lastTS, err := flv.ScanComplete(r, size)
			return end, time.Duration(lastTS) * time.Millisecond, err
		}
	case ".mp4":
		scan = mp4.ScanComplete
	default:
		log.Warn("no repair for this container; interrupted recording left as it is", slog.String(roomrec.KeyPath, path))
		return size, 0, nil
	}
	// The scans take a failed read for the end of the file; an I/O error
	// must not cut good video off, so it is caught here.
	r := &readErrors{r: f}
	end, dur, err := scan(r, size)
	if r.err != nil {
		return 0, 0, fmt.Errorf("read %s: %w", path, r.err)
	}
	if err != nil {
		// Not even a whole header: keep the bytes as they are for a human.
		log.Warn("interrupted recording has no readable start; left as it is", slog.String(roomrec.KeyPath, path), roomrec.LogErr(err))
		return size, 0, nil
	}
	if end < size {
		if err := f.Truncate(end); err != nil {
			return 0, 0, err
		}
	}
	return end, dur, nil
}

// readErrors passes reads through and keeps the first error that is not
// the end of the file.
type readErrors struct {
	r   io.ReaderAt
	err error
}

func (e *readErrors) ReadAt(p []byte, off int64) (int, error) {
	n, err := e.r.ReadAt(p, off)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// recoverDanmaku finishes the danmaku file of an interrupted recording and
// returns rel if a finished danmaku file is there afterwards.
func recoverDanmaku(dir, rel string, log *slog.Logger) string {
	final := filepath.Join(dir, filepath.FromSlash(rel))
	if err := finishDanmakuPart(final+PartSuffix, final); err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Warn("danmaku of an interrupted recording not finished", slog.String(roomrec.KeyPath, final+PartSuffix), roomrec.LogErr(err))
		return ""
	}
	if _, err := os.Stat(final); err != nil {
		return ""
	}
	return rel
}

// finishDanmakuPart closes the XML document in part after its last whole
// line and commits it under final. It changes the file in place (cut, then
// append), so a crash part way leaves a file this can finish again.
func finishDanmakuPart(part, final string) error {
	f, err := os.OpenFile(part, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	data, err := io.ReadAll(f)
	if err == nil && !bytes.HasSuffix(bytes.TrimSpace(data), []byte("</i>")) {
		keep := int64(len(data))
		if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
			keep = int64(i + 1)
		}
		if err = f.Truncate(keep); err == nil {
			_, err = f.WriteAt([]byte("</i>\n"), keep)
		}
	}
	if err != nil {
		f.Close()
		return err
	}
	_, err = commitFile(f, part, final, syncDir)
	return err
}
