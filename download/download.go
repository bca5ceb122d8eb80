// Package download mints and serves signed, expiring links to archived
// recordings. A link names a recording by id and carries an HMAC over the
// id and its expiry, so it cannot be forged, extended or pointed at another
// file, and it never shows a path.
package download

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"roomrec"
	"roomrec/recording"
	"roomrec/storage"
)

// keySize is the HMAC key length: 256 bits, as SHA-256 wants.
const keySize = 32

// LoadKey reads the signing key at path, creating it (readable by the owner
// only) the first time, so links stay valid across restarts.
func LoadKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if err == nil && len(key) == keySize {
		return key, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read download key: %w", err)
	}
	key = make([]byte, keySize)
	rand.Read(key)
	if err := os.WriteFile(path, key, 0o600); err != nil {
		return nil, fmt.Errorf("write download key: %w", err)
	}
	return key, nil
}

// Recordings finds a recording by id; *storage.Store implements it.
type Recordings interface {
	RecordingByID(ctx context.Context, id int64) (storage.Recording, error)
}

// Links mints links and serves the files they name.
type Links struct {
	key     []byte
	base    string // public base URL, without a trailing slash
	dir     string // the recordings directory
	recs    Recordings
	ttl     time.Duration
	now     func() time.Time
	log     *slog.Logger
	enabled bool
}

// Options configure Links.
type Options struct {
	Key           []byte
	PublicURL     string // what links start with
	RecordingsDir string
	TTL           time.Duration // default 24 h
	Now           func() time.Time
	Logger        *slog.Logger
}

// New returns Links. With an empty PublicURL no links are minted.
func New(recs Recordings, opts Options) *Links {
	if opts.TTL <= 0 {
		opts.TTL = 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Links{key: opts.Key, base: strings.TrimRight(opts.PublicURL, "/"), dir: opts.RecordingsDir, recs: recs,
		ttl: opts.TTL, now: opts.Now, log: opts.Logger, enabled: opts.PublicURL != ""}
}

// ErrNoLinks means the server has no public URL to make links with. Its
// message is for the user who asked for a link.
var ErrNoLinks = &roomrec.Error{Code: roomrec.EUNAVAILABLE, Message: "Download links are off on this server (set ROOMREC_PUBLIC_URL)."}

// Link returns a link to a recording and when it expires.
func (l *Links) Link(recordingID int64) (string, time.Time, error) {
	if !l.enabled {
		return "", time.Time{}, ErrNoLinks
	}
	expires := l.now().Add(l.ttl).Truncate(time.Second)
	var msg [16]byte
	binary.BigEndian.PutUint64(msg[:8], uint64(recordingID))
	binary.BigEndian.PutUint64(msg[8:], uint64(expires.Unix()))
	token := append(msg[:], l.sign(msg[:])...)
	return l.base + "/dl/" + base64.RawURLEncoding.EncodeToString(token), expires, nil
}

func (l *Links) sign(msg []byte) []byte {
	mac := hmac.New(sha256.New, l.key)
	mac.Write(msg)
	return mac.Sum(nil)[:16]
}

// verify returns the recording id a token names, or false if the token is
// malformed, tampered with or expired.
func (l *Links) verify(token string) (int64, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != 32 {
		return 0, false
	}
	if !hmac.Equal(raw[16:], l.sign(raw[:16])) {
		return 0, false
	}
	if l.now().Unix() > int64(binary.BigEndian.Uint64(raw[8:16])) {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(raw[:8])), true
}

// ServeHTTP serves GET /dl/{token}: the recording's file with Range support,
// or 403 for any link that is not valid now. The answer never says why, or
// where files are.
func (l *Links) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token := strings.TrimPrefix(r.URL.Path, "/dl/")
	id, ok := l.verify(token)
	if !ok {
		http.Error(w, "This link is not valid, or has expired.", http.StatusForbidden)
		return
	}
	rec, err := l.recs.RecordingByID(r.Context(), id)
	if err != nil || rec.Status == storage.Deleted || rec.Status == storage.Writing {
		http.Error(w, "This recording is not available.", http.StatusNotFound)
		return
	}
	rel := filepath.FromSlash(rec.Path)
	if !filepath.IsLocal(rel) {
		l.log.Error("recording path leaves the recordings directory", slog.Int64("recording", id))
		http.Error(w, "This recording is not available.", http.StatusNotFound)
		return
	}
	f, err := os.Open(filepath.Join(l.dir, rel))
	if err != nil {
		http.Error(w, "This recording is not available.", http.StatusNotFound)
		return
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		http.Error(w, "This recording is not available.", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", recording.VideoContentType(rel))
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename*=UTF-8''%s", urlPathEscape(filepath.Base(rel))))
	http.ServeContent(w, r, "", info.ModTime(), f)
}

func urlPathEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
