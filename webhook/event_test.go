package webhook_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"roomrec/webhook"
)

var (
	guid      = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	timestamp = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?[+-]\d\d:\d\d$`)
)

// Each event's body has BililiveRecorder's keys in its order, its time
// format and its number forms. The room and times are those of the
// examples in BililiveRecorder's webhook documentation, so a body can be
// set beside them.
func TestEventBodies(t *testing.T) {
	zone := time.FixedZone("CST", 8*3600)
	at := time.Date(2026, 5, 14, 17, 52, 50, 525639400, zone)
	room := webhook.Room{RoomID: 23058, ShortID: 3, Name: "3号直播间", Title: "音乐 & <歌>", AreaNameParent: "生活", AreaNameChild: "影音馆",
		Recording: true, Streaming: true, DanmakuConnected: true}
	const roomJSON = `"RoomId":23058,"ShortId":3,"Name":"3号直播间","Title":"音乐 & <歌>","AreaNameParent":"生活","AreaNameChild":"影音馆","Recording":true,"Streaming":true,"DanmakuConnected":true`
	session := "7d9c1f0e-2b64-4c1a-9e55-0f3a8d2c4b61"
	for _, c := range []struct {
		name, typ string
		data      webhook.EventData
		want      string // EventData
	}{
		{"stream started", webhook.StreamStarted, room, `{` + roomJSON + `}`},
		{"session started", webhook.SessionStarted, webhook.Session{SessionID: session, Room: room},
			`{"SessionId":"` + session + `",` + roomJSON + `}`},
		{"file opening", webhook.FileOpening, webhook.FileOpeningData{SessionID: session, RelativePath: "23058/a-p001.flv",
			FileOpenTime: webhook.Time(at), Room: room},
			`{"SessionId":"` + session + `","RelativePath":"23058/a-p001.flv","FileOpenTime":"2026-05-14T17:52:50.5256394+08:00",` + roomJSON + `}`},
		{"file closed, whole seconds", webhook.FileClosed, webhook.FileClosedData{SessionID: session, RelativePath: "23058/a-p001.flv",
			FileSize: 816412, Duration: webhook.SecondsOf(5 * time.Second), FileOpenTime: webhook.Time(at),
			FileCloseTime: webhook.Time(at.Add(4*time.Second + 474600*time.Nanosecond).Truncate(time.Second)), Room: room},
			`{"SessionId":"` + session + `","RelativePath":"23058/a-p001.flv","FileSize":816412,"Duration":5.0,` +
				`"FileOpenTime":"2026-05-14T17:52:50.5256394+08:00","FileCloseTime":"2026-05-14T17:52:54+08:00",` + roomJSON + `}`},
		{"file closed, fraction", webhook.FileClosed, webhook.FileClosedData{SessionID: session, FileSize: 0,
			Duration: webhook.SecondsOf(4992 * time.Millisecond), FileOpenTime: webhook.Time(at.UTC()), FileCloseTime: webhook.Time(at), Room: room},
			`{"SessionId":"` + session + `","RelativePath":"","FileSize":0,"Duration":4.992,` +
				`"FileOpenTime":"2026-05-14T09:52:50.5256394+00:00","FileCloseTime":"2026-05-14T17:52:50.5256394+08:00",` + roomJSON + `}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			ev := webhook.NewEvent(c.typ, at, c.data)
			body, err := ev.Body()
			if err != nil {
				t.Fatal(err)
			}
			want := `{"EventType":"` + c.typ + `","EventTimestamp":"2026-05-14T17:52:50.5256394+08:00","EventId":"` + ev.ID + `","EventData":` + c.want + `}`
			if string(body) != want {
				t.Errorf("body\n got %s\nwant %s", body, want)
			}
			if !guid.MatchString(ev.ID) {
				t.Errorf("EventId %q is not a lowercase GUID", ev.ID)
			}
			var generic map[string]any
			if err := json.Unmarshal(body, &generic); err != nil {
				t.Errorf("body is not JSON: %v", err)
			}
		})
	}
	if a, b := webhook.NewID(), webhook.NewID(); a == b {
		t.Errorf("two ids alike: %s", a)
	}
}

func TestTimeLayout(t *testing.T) {
	for _, c := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), "2026-01-02T03:04:05+00:00"},
		{time.Date(2026, 1, 2, 3, 4, 5, 100_000_000, time.FixedZone("", -5*3600)), "2026-01-02T03:04:05.1-05:00"},
		{time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("", 8*3600)), "2026-01-02T03:04:05.1234567+08:00"},
	} {
		b, _ := webhook.Time(c.t).MarshalJSON()
		if got := strings.Trim(string(b), `"`); got != c.want || !timestamp.MatchString(got) {
			t.Errorf("%v written %s, want %s", c.t, got, c.want)
		}
		var back webhook.Time
		if err := back.UnmarshalJSON(b); err != nil || !time.Time(back).Equal(c.t.Truncate(100*time.Nanosecond)) {
			t.Errorf("%s read back as %v (%v)", b, time.Time(back), err)
		}
	}
}
