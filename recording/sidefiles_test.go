package recording

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// fakeFinished is a finished file that notes the order of what is done to
// it and to its directory.
type fakeFinished struct {
	part, final string
	syncErr     error
	calls       *[]string
}

func (f fakeFinished) Sync() error {
	if info, err := os.Stat(f.final); err == nil && info.Mode().IsRegular() && f.part != f.final {
		*f.calls = append(*f.calls, "sync after rename")
	} else {
		*f.calls = append(*f.calls, "sync")
	}
	return f.syncErr
}

func (f fakeFinished) Close() error {
	*f.calls = append(*f.calls, "close")
	return nil
}

func TestCommitFileSyncsThenRenamesThenSyncsTheDirectory(t *testing.T) {
	errDisk := errors.New("disk says no")
	for _, tc := range []struct {
		name      string
		syncErr   error
		dirErr    error
		blocked   bool // a directory stands at the final name
		wantCalls []string
		wantAt    string // "part" or "final"
		wantErr   bool
	}{
		{name: "finished", wantCalls: []string{"sync", "close", "renamed: sync dir"}, wantAt: "final"},
		{name: "file sync fails", syncErr: errDisk, wantCalls: []string{"sync", "close"}, wantAt: "part", wantErr: true},
		{name: "rename fails", blocked: true, wantCalls: []string{"sync", "close"}, wantAt: "part", wantErr: true},
		{name: "directory sync fails", dirErr: errDisk, wantCalls: []string{"sync", "close", "renamed: sync dir"}, wantAt: "final", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			part, final := filepath.Join(dir, "v.flv.part"), filepath.Join(dir, "v.flv")
			os.WriteFile(part, []byte("FLV"), 0o644)
			if tc.blocked {
				os.Mkdir(final, 0o755)
			}
			var calls []string
			syncDir := func(d string) error {
				if _, err := os.Stat(part); d == dir && os.IsNotExist(err) {
					calls = append(calls, "renamed: sync dir")
				} else {
					calls = append(calls, "sync dir before the rename")
				}
				return tc.dirErr
			}
			at, err := commitFile(fakeFinished{part: part, final: final, syncErr: tc.syncErr, calls: &calls}, part, final, syncDir)
			if !slices.Equal(calls, tc.wantCalls) {
				t.Errorf("calls = %q, want %q", calls, tc.wantCalls)
			}
			if want := map[string]string{"part": part, "final": final}[tc.wantAt]; at != want {
				t.Errorf("file at %s, want %s", at, want)
			}
			if (err != nil) != tc.wantErr {
				t.Errorf("err = %v, want error %v", err, tc.wantErr)
			}
			if info, err := os.Stat(at); err != nil || !info.Mode().IsRegular() {
				t.Errorf("no file where commitFile says it is: %v", err)
			}
		})
	}
}

func TestSyncDir(t *testing.T) {
	if err := syncDir(t.TempDir()); err != nil {
		t.Errorf("syncDir = %v", err)
	}
	if err := syncDir(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Error("syncDir of a missing directory succeeded")
	}
}

func TestCoverExtIsASideFile(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"/bfs/live/a.jpg", ".jpg"},
		{"/bfs/live/a.JPEG", ".jpeg"},
		{"/bfs/live/a.png", ".png"},
		{"/bfs/live/a.webp", ".webp"},
		{"/bfs/live/a.gifv", ".jpg"},
		{"/bfs/live/a", ".jpg"},
		{"/bfs/live/a.php", ".jpg"},
	} {
		got := coverExt(tc.url)
		if got != tc.want {
			t.Errorf("coverExt(%q) = %q, want %q", tc.url, got, tc.want)
		}
		if !slices.Contains(SideFiles("1/v.flv"), "1/v"+got) {
			t.Errorf("a cover saved as %s is not among SideFiles %q", got, SideFiles("1/v.flv"))
		}
	}
	if got := SideFiles("1/v.mp4")[0]; got != "1/v.xml" {
		t.Errorf("first side file of an mp4 = %q, want its danmaku", got)
	}
}
