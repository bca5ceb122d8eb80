package recording_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"roomrec/recording"
)

// fullDisk is a file that accepts a budget of bytes shared by every file,
// then fails as a full disk does.
type fullDisk struct {
	budget *atomic.Int64
	f      *os.File
}

func (d fullDisk) Write(p []byte) (int, error) {
	if d.budget.Add(-int64(len(p))) < 0 {
		return 0, &os.PathError{Op: "write", Path: d.f.Name(), Err: syscall.ENOSPC}
	}
	return d.f.Write(p)
}
func (d fullDisk) WriteAt(p []byte, off int64) (int, error) { return d.f.WriteAt(p, off) }
func (d fullDisk) Close() error                             { return d.f.Close() }
func (d fullDisk) Truncate(size int64) error                { return d.f.Truncate(size) }
func (d fullDisk) Sync() error                              { return d.f.Sync() }

func TestDiskFullStopsCleanlyAndResumes(t *testing.T) {
	var budget atomic.Int64
	budget.Store(300 << 10) // the header, then a few buffer loads
	h := newHarness(t, harnessConfig{live: true, speed: 8, opts: func(o *recording.Options) {
		o.CreateFile = func(path string) (recording.File, error) {
			f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return nil, err
			}
			return fullDisk{budget: &budget, f: f}, nil
		}
	}})
	task := h.start()
	errs := waitCount[recording.TaskError](t, h.events, 1, 10*time.Second)
	if errs[0].Kind != recording.ErrorDisk || !errs[0].Recoverable {
		t.Fatalf("TaskError = %+v, want a recoverable disk error", errs[0])
	}
	closed := waitCount[recording.FileClosed](t, h.events, 1, 5*time.Second)
	if !closed[0].Interrupted {
		t.Errorf("file cut by a full disk is not marked interrupted")
	}
	// What was written before the disk filled still plays.
	probe(t, filepath.Join(h.dir, closed[0].Path))

	// While the disk stays full the task waits between attempts instead of
	// spinning, and reports the condition once.
	time.Sleep(1500 * time.Millisecond)
	if n := len(ofType[recording.TaskError](h.events)); n != 1 {
		t.Errorf("%d TaskErrors while the disk stayed full, want 1", n)
	}
	if n := len(ofType[recording.FileOpened](h.events)); n > 6 {
		t.Errorf("%d files opened in 1.5 s of full disk; the task is spinning", n)
	}
	if s := task.Status(); s == recording.Stopped {
		t.Fatal("task stopped on a full disk; it should wait and retry")
	}

	opened := len(ofType[recording.FileOpened](h.events))
	budget.Store(1 << 30) // space is back
	waitCount[recording.TaskRecovered](t, h.events, 1, 10*time.Second)
	waitCount[recording.FileOpened](t, h.events, opened+1, 10*time.Second)
	time.Sleep(500 * time.Millisecond)
	files := h.endAndCollect()
	if last := files[len(files)-1]; last.Interrupted || last.Size < 10<<10 {
		t.Errorf("file after the disk recovered = %+v, want a complete recording", last)
	}
}

// TestDiskFullOnTmpfs fills a real, tiny file system. It needs root and
// permission to mount; elsewhere it is skipped (the test above still runs).
func TestDiskFullOnTmpfs(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	h := newHarness(t, harnessConfig{live: true, speed: 8, opts: func(o *recording.Options) { o.Dir = dir }})
	h.dir = dir
	task := h.start()
	errs := waitCount[recording.TaskError](t, h.events, 1, 15*time.Second)
	if errs[0].Kind != recording.ErrorDisk {
		t.Fatalf("TaskError = %+v, want disk", errs[0])
	}
	closed := waitCount[recording.FileClosed](t, h.events, 1, 5*time.Second)
	probe(t, filepath.Join(dir, closed[0].Path))
	if task.Status() == recording.Stopped {
		t.Error("task stopped on a full disk")
	}
	// Free the space: recording resumes on its own. (The tiny file system
	// fills again soon after, which is the point of a tiny one.)
	opened := len(ofType[recording.FileOpened](h.events))
	finished, _ := filepath.Glob(filepath.Join(dir, "5440", "*.flv"))
	for _, f := range finished {
		os.Remove(f)
	}
	waitCount[recording.FileOpened](t, h.events, opened+1, 15*time.Second)
	if n := len(ofType[recording.TaskError](h.events)); n != 1 {
		t.Errorf("%d TaskErrors, want 1 for one full-disk condition", n)
	}
}

func TestDiskGuardHoldsNewFilesUntilSpaceReturns(t *testing.T) {
	var free atomic.Int64
	free.Store(100 << 20)
	h := newHarness(t, harnessConfig{live: true, opts: func(o *recording.Options) {
		o.MinFreeBytes = 1 << 30
		o.DiskFree = func(string) (uint64, error) { return uint64(free.Load()), nil }
	}})
	task := h.start()
	errs := waitCount[recording.TaskError](t, h.events, 1, 5*time.Second)
	if errs[0].Kind != recording.ErrorDisk || !strings.Contains(errs[0].Err.Error(), "below the floor") {
		t.Fatalf("TaskError = %+v, want the disk guard", errs[0])
	}
	time.Sleep(time.Second)
	if n := len(ofType[recording.FileOpened](h.events)); n != 0 {
		t.Errorf("%d files opened below the floor, want none", n)
	}
	if n := len(ofType[recording.TaskError](h.events)); n != 1 {
		t.Errorf("%d TaskErrors while below the floor, want 1", n)
	}
	if task.Status() == recording.Stopped {
		t.Fatal("the guard stopped the task")
	}
	free.Store(10 << 30)
	waitCount[recording.FileOpened](t, h.events, 1, 10*time.Second)
	h.endAndCollect()
}
