package bot

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"roomrec/bilibili"
	"roomrec/recording"
	"roomrec/redact"
	"roomrec/storage"
)

// roomURL is where a room is watched.
func roomURL(roomID int64) string { return fmt.Sprintf("https://live.bilibili.com/%d", roomID) }

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func formatDuration(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	switch {
	case h > 0:
		return fmt.Sprintf("%dh%02dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm%02ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}

// liveMessage is the alert for a broadcast that has started. A recording
// below the quality asked for says why when roomrec is not logged in:
// Bilibili serves at most 480p to a visitor, and a group should not learn
// that from its archive.
func liveMessage(e recording.LiveStarted, recorded, loggedIn bool) Message {
	var b strings.Builder
	fmt.Fprintf(&b, "🔴 %s is live: %s\n", nameOr(e.Anchor, e.RoomID), e.Title)
	if e.Area != "" {
		fmt.Fprintf(&b, "%s · ", e.Area)
	}
	fmt.Fprintf(&b, "since %s", e.LiveStart.Format("15:04"))
	if recorded {
		b.WriteString(" · recording")
		if s := e.Stream; s.Qn != 0 {
			fmt.Fprintf(&b, " in %s (%s)", s.QualityName(), codecName(s.Codec))
			if s.Qn < e.Requested && !loggedIn {
				fmt.Fprintf(&b, "\nBilibili serves %s only to a logged-in account, so this is recorded at %s. An owner of this roomrec can /login in a private chat with me.",
					bilibili.QualityName(e.Requested), s.QualityName())
			}
		}
	}
	return Message{Text: b.String(), PhotoURL: e.Cover, LinkURL: roomURL(e.RoomID), LinkLabel: "Open the room"}
}

// codecName is a video codec as viewers know it.
func codecName(codec string) string {
	switch codec {
	case "avc":
		return "H.264"
	case "hevc":
		return "HEVC"
	}
	return codec
}

// endedMessage replaces the alert when the broadcast is over.
func endedMessage(e recording.LiveEnded) Message {
	text := fmt.Sprintf("⚫ %s was live: %s\nEnded after %s", nameOr(e.Anchor, e.RoomID), e.Title, formatDuration(e.Duration))
	if e.Files > 0 {
		text += fmt.Sprintf(" · recorded %d file(s), %s · /archive", e.Files, formatBytes(e.Bytes))
	}
	return Message{Text: text, LinkURL: roomURL(e.RoomID), LinkLabel: "Open the room"}
}

func titleMessage(e recording.TitleChanged) Message {
	return Message{Text: fmt.Sprintf("✏️ %s changed the title: %s", nameOr(e.Anchor, e.RoomID), e.New)}
}

// uncountedMessage tells a chat that was alerted for a broadcast that a new
// title leaves it out under the chat's rules.
func uncountedMessage(e recording.TitleChanged, sub storage.Subscriber) Message {
	text := titleMessage(e).Text + "\nThis broadcast no longer counts for this chat"
	if w := skipWord(sub.Rules, e.New); w != "" {
		text += fmt.Sprintf(" (its title has %s)", w)
	}
	if sub.Mode == storage.Record {
		text += ": no more of it goes into this chat's archive."
	} else {
		text += "."
	}
	return Message{Text: text}
}

func problemMessage(e recording.TaskError) (Message, bool) {
	name := nameOr(e.Anchor, e.RoomID)
	switch e.Kind {
	case recording.ErrorRiskControl:
		return Message{Text: "⚠️ Bilibili has been refusing some of my requests for a while (risk control). I'm asking less often, so alerts may come late; a BILIBILI_COOKIE on the server usually helps."}, true
	case recording.ErrorNetwork:
		return Message{Text: fmt.Sprintf("⚠️ %s is live, but I can't get the stream from Bilibili's servers (%s); the recording has a gap. I'm still trying.", name, briefError(e.Err))}, true
	case recording.ErrorNoStream:
		return Message{Text: fmt.Sprintf("⚠️ %s is live, but Bilibili offers the stream only in formats this roomrec is set not to record (ROOMREC_STREAM_ORDER). I'll keep checking and record as soon as one it records appears.", name)}, true
	case recording.ErrorDisk:
		return Message{Text: "⚠️ The disk I record to is full or not writable, so recordings are paused. They resume by themselves when it can write again."}, true
	case recording.ErrorRoomGone:
		return Message{Text: fmt.Sprintf("⚠️ Bilibili no longer knows %s; I stopped watching it. /stop %d removes it.", name, e.RoomID)}, true
	case recording.ErrorProtocol:
		return Message{Text: fmt.Sprintf("⚠️ Bilibili changed how it answers; I can't follow %s until roomrec is updated.", name)}, true
	case recording.ErrorFormat:
		return Message{Text: fmt.Sprintf("⚠️ %s is live, but I can't write its stream to a file (%s). I'll keep trying; a different ROOMREC_CONTAINER may help.", name, briefError(e.Err))}, true
	}
	return Message{}, false
}

// briefError says what went wrong, for a chat: a failed request's method
// and URL are left out as noise, and whatever URL is left in the text is cut
// by redact (a stream URL is signed, and its query names the account and the
// server, which a group chat has no business seeing).
func briefError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return redact.Text(err.Error())
}

func nameOr(anchor string, roomID int64) string {
	if anchor != "" {
		return anchor
	}
	return fmt.Sprintf("Room %d", roomID)
}
