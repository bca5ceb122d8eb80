package recording

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// PartSuffix marks a file that is still being written, or was when roomrec
// stopped; the finished file has the same name without it.
const PartSuffix = ".part"

// videoTypes are the containers roomrec records into, by file extension,
// with the media type a download is served as.
var videoTypes = map[string]string{
	".flv": "video/x-flv",
	".mp4": "video/mp4",
}

// IsVideo reports whether name is a video file roomrec writes (finished,
// not a .part).
func IsVideo(name string) bool {
	_, ok := videoTypes[strings.ToLower(filepath.Ext(name))]
	return ok
}

// VideoContentType returns the media type to serve a video file as, or
// application/octet-stream for a name that is not a video roomrec writes.
func VideoContentType(name string) string {
	if t, ok := videoTypes[strings.ToLower(filepath.Ext(name))]; ok {
		return t
	}
	return "application/octet-stream"
}

// coverExts are the only extensions the cover saver writes: whatever a
// cover URL ends in, it is saved under one of these, so SideFiles can name
// every cover there may be.
var coverExts = []string{".jpg", ".jpeg", ".png", ".webp", ".gif", ".avif"}

// coverExt returns the extension to save a cover fetched from urlPath
// under: the URL's own if it is a known image type, .jpg otherwise (what
// Bilibili serves most).
func coverExt(urlPath string) string {
	ext := strings.ToLower(filepath.Ext(urlPath))
	if slices.Contains(coverExts, ext) {
		return ext
	}
	return ".jpg"
}

// DanmakuPath returns the path of the danmaku XML that sits beside video.
// It works on relative and absolute paths alike.
func DanmakuPath(video string) string {
	return trimExt(video) + ".xml"
}

// SideFiles returns every file roomrec may write beside video: its danmaku
// XML and its cover under each extension the cover saver uses. Most of
// them do not exist for any one video. Whatever removes or moves a video
// should treat all of them (and a leftover of each under PartSuffix) with
// it. It works on relative and absolute paths alike.
func SideFiles(video string) []string {
	base := trimExt(video)
	files := []string{DanmakuPath(video)}
	for _, ext := range coverExts {
		files = append(files, base+ext)
	}
	return files
}

// syncDir makes a rename or creation inside dir durable: until the
// directory itself reaches the disk, a crash may forget the new name even
// though the file's bytes were synced.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncCloser is what commitFile needs of a finished file.
type syncCloser interface {
	Sync() error
	Close() error
}

// commitFile makes a finished file durable under its final name: its bytes
// reach the disk before it is renamed from part to final, and the rename
// reaches the disk (syncDir on the directory) before the caller may call
// the file complete. It closes f in every case. It returns where the file
// is now: final once the rename happened (even if the directory sync then
// failed), part otherwise. part and final may be the same name, for a file
// renamed before a crash; then only the syncs are done. A failed sync of
// the file leaves it under part, so it is never presented as finished.
func commitFile(f syncCloser, part, final string, syncDir func(dir string) error) (string, error) {
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return part, err
	}
	if part != final {
		if err := os.Rename(part, final); err != nil {
			return part, err
		}
	}
	return final, syncDir(filepath.Dir(final))
}
