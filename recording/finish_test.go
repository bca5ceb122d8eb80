package recording_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"roomrec/recording"
)

// probedFile is a real video file that notes what was done to it and in
// which state the disk was when its data was synced.
type probedFile struct {
	*os.File
	syncErr error // what Sync fails with; nil = a real sync

	mu    sync.Mutex
	calls []string
}

func (f *probedFile) note(call string) {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	f.mu.Unlock()
}

func (f *probedFile) Sync() error {
	final := strings.TrimSuffix(f.Name(), ".part")
	if _, err := os.Stat(final); err == nil {
		f.note("sync after rename")
	} else {
		f.note("sync")
	}
	if f.syncErr != nil {
		return f.syncErr
	}
	return f.File.Sync()
}

func (f *probedFile) Close() error {
	f.note("close")
	return f.File.Close()
}

func (f *probedFile) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// probedFiles makes Options.CreateFile hand out probedFiles.
type probedFiles struct {
	syncErr error
	mu      sync.Mutex
	files   []*probedFile
}

func (p *probedFiles) create(path string) (recording.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	pf := &probedFile{File: f, syncErr: p.syncErr}
	p.mu.Lock()
	p.files = append(p.files, pf)
	p.mu.Unlock()
	return pf, nil
}

func (p *probedFiles) all() []*probedFile {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.files)
}

// endLive ends the broadcast and returns the one file it wrote.
func (h *harness) endLive() recording.FileClosed {
	h.t.Helper()
	h.room.EndLive()
	waitCount[recording.LiveEnded](h.t, h.events, 1, 10*time.Second)
	closed := ofType[recording.FileClosed](h.events)
	if len(closed) != 1 {
		h.t.Fatalf("%d files closed, want 1: %s", len(closed), describe(h.events.all()))
	}
	return closed[0]
}

// A finished file's bytes reach the disk before its final name does, so a
// crash never leaves a final name on a file the disk has not got.
func TestFinishedFileIsSyncedBeforeRename(t *testing.T) {
	files := &probedFiles{}
	h := newHarness(t, harnessConfig{live: true, opts: func(o *recording.Options) { o.CreateFile = files.create }})
	h.start()
	opened := waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)[0]
	record(time.Second)
	closed := h.endLive()
	if closed.Err != nil || closed.Path != opened.Path {
		t.Errorf("FileClosed = %+v, want %s finished without error", closed, opened.Path)
	}
	got := files.all()
	if len(got) != 1 {
		t.Fatalf("%d files created, want 1", len(got))
	}
	if calls := got[0].log(); !slices.Equal(calls, []string{"sync", "close"}) {
		t.Errorf("calls = %q, want the data synced while still .part, then closed", calls)
	}
	probe(t, filepath.Join(h.dir, closed.Path))
}

// A file whose sync failed is not finished: it keeps its .part name and
// the event says why, so nothing indexes it as complete.
func TestFailedSyncLeavesFileUnfinished(t *testing.T) {
	files := &probedFiles{syncErr: &os.PathError{Op: "sync", Path: "video", Err: syscall.EIO}}
	h := newHarness(t, harnessConfig{live: true, opts: func(o *recording.Options) { o.CreateFile = files.create }})
	h.start()
	opened := waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)[0]
	record(time.Second)
	closed := h.endLive()
	if closed.Err == nil || !strings.Contains(closed.Err.Error(), "input/output error") || !closed.Interrupted {
		t.Errorf("FileClosed = %+v, want the sync error and interrupted", closed)
	}
	if want := opened.Path + ".part"; closed.Path != want {
		t.Errorf("FileClosed.Path = %q, want %q where the file is", closed.Path, want)
	}
	if _, err := os.Stat(filepath.Join(h.dir, opened.Path+".part")); err != nil {
		t.Errorf("the unsynced file is not kept as .part: %v", err)
	}
	if _, err := os.Stat(filepath.Join(h.dir, opened.Path)); !os.IsNotExist(err) {
		t.Errorf("the unsynced file got its final name: %v", err)
	}
}

// A file that could not be renamed is reported where it really is, with
// the error; the repair of the next start finishes it.
func TestFailedRenameReportsThePartFile(t *testing.T) {
	h := newHarness(t, harnessConfig{live: true})
	h.start()
	opened := waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)[0]
	// A directory in the way makes the rename fail, even for root.
	final := filepath.Join(h.dir, filepath.FromSlash(opened.Path))
	if err := os.MkdirAll(filepath.Join(final, "in the way"), 0o755); err != nil {
		t.Fatal(err)
	}
	record(time.Second)
	closed := h.endLive()
	if closed.Err == nil || !closed.Interrupted {
		t.Errorf("FileClosed = %+v, want the rename error and interrupted", closed)
	}
	if want := opened.Path + ".part"; closed.Path != want {
		t.Fatalf("FileClosed.Path = %q, want %q where the file is", closed.Path, want)
	}
	info, err := os.Stat(filepath.Join(h.dir, filepath.FromSlash(closed.Path)))
	if err != nil || !info.Mode().IsRegular() || info.Size() != closed.Size {
		t.Fatalf("reported file: %v, %v; want a regular file of %d bytes", info, err, closed.Size)
	}

	// The next start: the way is clear, and Recover finishes the file.
	if err := os.RemoveAll(final); err != nil {
		t.Fatal(err)
	}
	r, err := recording.Recover(h.dir, opened.Path, nil)
	if err != nil || !r.Found || r.Size != closed.Size {
		t.Fatalf("Recover = %+v, %v; want the file found, %d bytes", r, err, closed.Size)
	}
	probe(t, final)
	if r.DanmakuPath != recording.DanmakuPath(opened.Path) {
		t.Errorf("danmaku = %q, want %q", r.DanmakuPath, recording.DanmakuPath(opened.Path))
	}
}

// Whatever a cover URL ends in, the cover is saved under a name SideFiles
// gives, so it goes when its recording does.
func TestCoverIsSavedAsASideFile(t *testing.T) {
	for _, tc := range []struct {
		name, cover, ext string
	}{
		{"webp", "/_sim/cover/5440.webp", ".webp"},
		{"unknown extension", "/_sim/cover/5440.gifv", ".jpg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessConfig{live: true, cover: tc.cover})
			h.start()
			waitCount[recording.FileOpened](t, h.events, 1, 5*time.Second)
			record(time.Second)
			closed := h.endLive()
			video := filepath.Join(h.dir, filepath.FromSlash(closed.Path))
			entries, err := os.ReadDir(filepath.Dir(video))
			if err != nil {
				t.Fatal(err)
			}
			side := recording.SideFiles(video)
			var covers []string
			for _, e := range entries {
				p := filepath.Join(filepath.Dir(video), e.Name())
				if p == video {
					continue
				}
				if !slices.Contains(side, p) {
					t.Errorf("%s is beside the video but SideFiles does not name it", e.Name())
				}
				if filepath.Ext(p) != ".xml" {
					covers = append(covers, filepath.Ext(p))
				}
			}
			if !slices.Equal(covers, []string{tc.ext}) {
				t.Errorf("covers saved as %q, want one %s", covers, tc.ext)
			}
		})
	}
}

// Recover cuts an FLV back to whole tags and keeps the bytes of a
// container it cannot repair yet.
func TestRecoverByContainer(t *testing.T) {
	sample, err := os.ReadFile(filepath.Join("..", "bilibili", "bilibilitest", "testdata", "sample_a.flv"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "1"), 0o755)
	os.WriteFile(filepath.Join(dir, "1", "a.flv.part"), sample[:len(sample)/2+5], 0o644)
	os.WriteFile(filepath.Join(dir, "1", "b.mp4.part"), []byte("not repaired yet"), 0o644)
	os.WriteFile(filepath.Join(dir, "1", "a.xml.part"), []byte("<i>\n<d p=\"1\">x</d>\n<d p="), 0o644)

	flv, err := recording.Recover(dir, "1/a.flv", nil)
	if err != nil || !flv.Found || flv.Size >= int64(len(sample)/2+5) || flv.Duration < time.Second || flv.DanmakuPath != "1/a.xml" {
		t.Errorf("Recover(flv) = %+v, %v; want it cut, with a duration and its danmaku", flv, err)
	}
	probe(t, filepath.Join(dir, "1", "a.flv"))
	if xml, _ := os.ReadFile(filepath.Join(dir, "1", "a.xml")); string(xml) != "<i>\n<d p=\"1\">x</d>\n</i>\n" {
		t.Errorf("danmaku = %q, want closed after its last whole line", xml)
	}
	mp4, err := recording.Recover(dir, "1/b.mp4", nil)
	if err != nil || !mp4.Found || mp4.Size != int64(len("not repaired yet")) {
		t.Errorf("Recover(mp4) = %+v, %v; want it kept as it is", mp4, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "1", "b.mp4")); err != nil {
		t.Errorf("mp4 not renamed: %v", err)
	}
	gone, err := recording.Recover(dir, "1/gone.flv", nil)
	if err != nil || gone.Found {
		t.Errorf("Recover(gone) = %+v, %v; want not found", gone, err)
	}
	if _, err := recording.Recover(dir, "../escape.flv", nil); err == nil {
		t.Error("Recover left the recordings directory")
	}
}
