package download

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"roomrec/storage"
)

type recs map[int64]storage.Recording

func (r recs) RecordingByID(_ context.Context, id int64) (storage.Recording, error) {
	rec, ok := r[id]
	if !ok {
		return rec, storage.ErrNotFound
	}
	return rec, nil
}

func TestLinks(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "5440"), 0o755)
	content := []byte("FLV-0123456789abcdef")
	os.WriteFile(filepath.Join(dir, "5440", "录像.flv"), content, 0o644)
	now := time.Unix(1732400000, 0)
	clock := func() time.Time { return now }
	key, err := LoadKey(filepath.Join(dir, "key"))
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := LoadKey(filepath.Join(dir, "key")); string(again) != string(key) {
		t.Fatal("the key changed between loads; links would break at every restart")
	}
	r := recs{
		1: {ID: 1, Path: "5440/录像.flv", Status: storage.Complete},
		2: {ID: 2, Path: "5440/gone.flv", Status: storage.Deleted},
		3: {ID: 3, Path: "../../etc/passwd", Status: storage.Complete},
	}
	srv := httptest.NewServer(nil)
	defer srv.Close()
	links := New(r, Options{Key: key, PublicURL: srv.URL + "/", RecordingsDir: dir, TTL: time.Hour, Now: clock})
	srv.Config.Handler = links

	link, expires, err := links.Link(1)
	if err != nil || !strings.HasPrefix(link, srv.URL+"/dl/") || !expires.Equal(now.Add(time.Hour)) {
		t.Fatalf("Link = %q, %s, %v", link, expires, err)
	}
	get := func(url, rangeHeader string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if rangeHeader != "" {
			req.Header.Set("Range", rangeHeader)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	resp, body := get(link, "")
	if resp.StatusCode != http.StatusOK || body != string(content) || !strings.Contains(resp.Header.Get("Content-Disposition"), "%E5%BD%95") {
		t.Errorf("GET = %d %q %q", resp.StatusCode, body, resp.Header.Get("Content-Disposition"))
	}
	resp, body = get(link, "bytes=4-7")
	if resp.StatusCode != http.StatusPartialContent || body != "0123" {
		t.Errorf("Range GET = %d %q, want 206 0123", resp.StatusCode, body)
	}

	tampered := link[:len(link)-2] + "AA"
	deleted, _, _ := links.Link(2)
	escaping, _, _ := links.Link(3)
	other := New(r, Options{Key: []byte("another key of thirty-two bytes!"), PublicURL: srv.URL, RecordingsDir: dir, Now: clock})
	forged, _, _ := other.Link(1)
	for name, tt := range map[string]struct {
		url  string
		code int
	}{
		"tampered":              {tampered, http.StatusForbidden},
		"signed by another key": {forged, http.StatusForbidden},
		"garbage":               {srv.URL + "/dl/../../etc/passwd", http.StatusForbidden},
		"deleted recording":     {deleted, http.StatusNotFound},
		"path leaves the dir":   {escaping, http.StatusNotFound},
	} {
		resp, body := get(tt.url, "")
		if resp.StatusCode != tt.code || strings.Contains(body, dir) || strings.Contains(body, "passwd") {
			t.Errorf("%s: %d %q, want %d and no path", name, resp.StatusCode, body, tt.code)
		}
	}
	now = now.Add(2 * time.Hour)
	if resp, _ := get(link, ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("expired link = %d, want 403", resp.StatusCode)
	}
	if _, _, err := New(r, Options{Key: key}).Link(1); !errors.Is(err, ErrNoLinks) {
		t.Errorf("Link without a public URL = %v, want ErrNoLinks", err)
	}
}

// Recordings may be FLV or MP4; each is served as what it is.
func TestServesEachContainerWithItsType(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "5440"), 0o755)
	os.WriteFile(filepath.Join(dir, "5440", "a.flv"), []byte("FLV"), 0o644)
	os.WriteFile(filepath.Join(dir, "5440", "b.mp4"), []byte("mp4"), 0o644)
	r := recs{
		1: {ID: 1, Path: "5440/a.flv", Status: storage.Complete},
		2: {ID: 2, Path: "5440/b.mp4", Status: storage.Complete},
	}
	srv := httptest.NewServer(nil)
	defer srv.Close()
	links := New(r, Options{Key: make([]byte, keySize), PublicURL: srv.URL, RecordingsDir: dir})
	srv.Config.Handler = links
	for id, want := range map[int64]string{1: "video/x-flv", 2: "video/mp4"} {
		link, _, err := links.Link(id)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || got != want {
			t.Errorf("recording %d: %d %s, want 200 %s", id, resp.StatusCode, got, want)
		}
	}
}
