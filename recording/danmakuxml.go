package recording

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"roomrec/bilibili/danmaku"
)

// danmakuWriter writes a room's chat beside a video file as XML in the
// layout BililiveRecorder uses (an <i> root with <d>, <sc>, <gift> and
// <guard> elements), which danmaku converters and players already read.
// Times are positions in the video file (see fileSink.mediaNow), so they
// stay with the picture across the gaps a reconnect squeezes out.
type danmakuWriter struct {
	path   string // the .part path; the final name drops the suffix
	file   *os.File
	w      *bufio.Writer
	opened time.Time
}

func newDanmakuWriter(path string, room Room, title string, opened time.Time) (*danmakuWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	d := &danmakuWriter{path: path, file: f, w: bufio.NewWriterSize(f, 16<<10), opened: opened}
	fmt.Fprintf(d.w, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<i>\n"+
		"<chatserver>chat.bilibili.com</chatserver><chatid>0</chatid><mission>0</mission>"+
		"<maxlimit>1000</maxlimit><state>0</state><real_name>0</real_name><source>0</source>\n"+
		"<roomrec roomid=\"%d\" shortid=\"%d\" name=%s title=%s start_time=%s/>\n",
		room.RoomID, room.ShortID, xmlAttr(room.Anchor), xmlAttr(title), xmlAttr(opened.Format(time.RFC3339Nano)))
	if err := d.w.Flush(); err != nil {
		d.abandon()
		return nil, err
	}
	return d, nil
}

// write appends one chat event received at now, at position at in the
// video file. Events other than danmaku, super chats, gifts and guard
// purchases are ignored.
func (d *danmakuWriter) write(ev danmaku.Event, at time.Duration, now time.Time) error {
	ts := strconv.FormatFloat(max(at.Seconds(), 0), 'f', 3, 64)
	switch e := ev.(type) {
	case danmaku.Danmaku:
		sent := e.SentAt
		if sent.IsZero() {
			sent = now
		}
		fmt.Fprintf(d.w, "<d p=\"%s,%d,%d,%d,%d,0,%d,0\" user=%s>%s</d>\n",
			ts, e.Mode, e.FontSize, e.Color, sent.UnixMilli(), e.UID, xmlAttr(e.Uname), xmlText(e.Text))
	case danmaku.SuperChat:
		fmt.Fprintf(d.w, "<sc ts=\"%s\" user=%s uid=\"%d\" price=\"%d\" time=\"%d\">%s</sc>\n",
			ts, xmlAttr(e.Uname), e.UID, e.Price, int(e.Duration.Seconds()), xmlText(e.Message))
	case danmaku.Gift:
		fmt.Fprintf(d.w, "<gift ts=\"%s\" user=%s uid=\"%d\" giftname=%s giftcount=\"%d\"/>\n",
			ts, xmlAttr(e.Uname), e.UID, xmlAttr(e.GiftName), e.Num)
	case danmaku.GuardBuy:
		fmt.Fprintf(d.w, "<guard ts=\"%s\" user=%s uid=\"%d\" level=\"%d\" count=\"%d\"/>\n",
			ts, xmlAttr(e.Uname), e.UID, e.Level, e.Num)
	default:
		return nil
	}
	// Flush per event: danmaku are rare next to video, and a crash should
	// lose as little chat as it loses video.
	return d.w.Flush()
}

// close ends the document, syncs it and renames it to its final name (see
// commitFile). On error the file may still be under its .part name.
func (d *danmakuWriter) close() error {
	io.WriteString(d.w, "</i>\n")
	if err := d.w.Flush(); err != nil {
		d.file.Close()
		return err
	}
	_, err := commitFile(d.file, d.path, strings.TrimSuffix(d.path, PartSuffix), syncDir)
	return err
}

// abandon closes the file and leaves it as it is, for after a write error.
func (d *danmakuWriter) abandon() {
	d.file.Close()
}

// xmlText escapes s for element content and drops what XML 1.0 cannot hold
// (most control characters), which chat messages sometimes contain.
func xmlText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == '&':
			b.WriteString("&amp;")
		case r == '"':
			b.WriteString("&quot;")
		case r == '\'':
			b.WriteString("&apos;")
		case r == '\n':
			b.WriteString("&#xA;")
		case r == '\t', r == '\r':
			b.WriteString(" ")
		case r < 0x20, r == utf8.RuneError, r == 0xFFFE, r == 0xFFFF, r >= 0xD800 && r <= 0xDFFF:
			// not allowed in XML 1.0
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// xmlAttr returns s escaped and quoted as an attribute value.
func xmlAttr(s string) string {
	return `"` + xmlText(s) + `"`
}
