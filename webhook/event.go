package webhook

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Event types, as BililiveRecorder names them.
const (
	SessionStarted = "SessionStarted" // a recording session (one download of a broadcast) began
	FileOpening    = "FileOpening"    // a video file was created
	FileClosed     = "FileClosed"     // a video file is finished on disk
	SessionEnded   = "SessionEnded"   // the recording session is over
	StreamStarted  = "StreamStarted"  // the room went live
	StreamEnded    = "StreamEnded"    // the broadcast is over
)

// Room is what every event says of its room and of roomrec's state there,
// after the fact the event reports.
type Room struct {
	RoomID           int64  `json:"RoomId"`
	ShortID          int64  `json:"ShortId"` // 0 when the room has none
	Name             string `json:"Name"`    // the anchor
	Title            string `json:"Title"`
	AreaNameParent   string `json:"AreaNameParent"`
	AreaNameChild    string `json:"AreaNameChild"`
	Recording        bool   `json:"Recording"`        // a recording session of the room is open
	Streaming        bool   `json:"Streaming"`        // the room is live
	DanmakuConnected bool   `json:"DanmakuConnected"` // roomrec's danmaku websocket for the room is up
}

// Session is the data of SessionStarted and SessionEnded.
type Session struct {
	SessionID string `json:"SessionId"`
	Room
}

// FileOpeningData is the data of FileOpening.
type FileOpeningData struct {
	SessionID    string `json:"SessionId"`
	RelativePath string `json:"RelativePath"` // final name, relative to the recordings directory; ".part" is appended while it is written
	FileOpenTime Time   `json:"FileOpenTime"`
	Room
}

// FileClosedData is the data of FileClosed.
type FileClosedData struct {
	SessionID     string  `json:"SessionId"`
	RelativePath  string  `json:"RelativePath"`
	FileSize      int64   `json:"FileSize"`
	Duration      Seconds `json:"Duration"` // of media
	FileOpenTime  Time    `json:"FileOpenTime"`
	FileCloseTime Time    `json:"FileCloseTime"`
	Room
}

// Event is one webhook event: the body of every POST made for it. The
// field order is BililiveRecorder's (its serializer writes a derived
// type's own fields before its base type's), so a body reads the same.
type Event struct {
	Type string    `json:"EventType"`
	Time Time      `json:"EventTimestamp"`
	ID   string    `json:"EventId"`
	Data EventData `json:"EventData"`
}

// EventData is Room, Session, FileOpeningData or FileClosedData.
type EventData interface{ eventRoom() Room }

func (r Room) eventRoom() Room { return r }

// NewEvent returns an event of typ that happened at at, with a new
// EventId.
func NewEvent(typ string, at time.Time, data EventData) Event {
	return Event{Type: typ, Time: Time(at), ID: NewID(), Data: data}
}

// NewID returns a random GUID, in the lowercase hyphenated form
// BililiveRecorder writes EventId and SessionId in.
func NewID() string { return uuid.NewString() }

// NilID is the SessionId of a file whose session is not known (a file
// recorded before roomrec kept sessions): the zero GUID, as
// BililiveRecorder writes an unset one.
const NilID = "00000000-0000-0000-0000-000000000000"

// Body returns the JSON posted for e: one line, no HTML escaping (a title
// keeps its & and <), as BililiveRecorder writes it.
func (e Event) Body() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// TimeLayout is how BililiveRecorder writes a time (.NET's DateTimeOffset
// in ISO 8601): up to seven digits of fraction with trailing zeros left
// out, and the offset always as ±hh:mm, never Z.
const TimeLayout = "2006-01-02T15:04:05.9999999-07:00"

// Time is a time written in TimeLayout, in the zone it carries.
type Time time.Time

func (t Time) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Time(t).Format(TimeLayout) + `"`), nil
}

func (t *Time) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return err
	}
	v, err := time.Parse(TimeLayout, s)
	*t = Time(v)
	return err
}

// Seconds is a duration written as seconds with a fraction, always with a
// decimal point (5.0, not 5), as .NET writes a double.
type Seconds float64

func (s Seconds) MarshalJSON() ([]byte, error) {
	v := strconv.FormatFloat(float64(s), 'f', -1, 64)
	if !strings.ContainsAny(v, ".eE") {
		v += ".0"
	}
	return []byte(v), nil
}

// SecondsOf returns d as Seconds.
func SecondsOf(d time.Duration) Seconds { return Seconds(d.Seconds()) }
