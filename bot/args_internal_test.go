package bot

import (
	"reflect"
	"testing"

	"roomrec"
)

// A command given as typed options (Discord's) is read as the same call,
// or refused with the same reply, as the text the other platforms type.
func TestOptionsReadAsText(t *testing.T) {
	tests := []struct {
		name    string
		command string
		opts    map[string]any
		text    string
	}{
		{"room option", "record", map[string]any{"room": "live.bilibili.com/5440?x=1"}, "/record live.bilibili.com/5440?x=1"},
		{"no options", "list", map[string]any{}, "/list"},
		{"archive list", "archive list", map[string]any{}, "/archive"},
		{"archive alone", "archive", nil, "/archive"},
		{"archive list of a room", "archive list", map[string]any{"room": "5440"}, "/archive 5440"},
		{"archive page of a room", "archive list", map[string]any{"room": "5440", "page": int64(2)}, "/archive 5440 page 2"},
		{"large id stays a whole number", "archive delete", map[string]any{"id": int64(1000000)}, "/archive delete 1000000"},
		{"link", "archive link", map[string]any{"id": int64(7)}, "/archive link 7"},
		{"keep shown", "archive keep", map[string]any{}, "/archive keep"},
		{"keep days and size", "archive keep", map[string]any{"days": int64(30), "gib": int64(1048576)}, "/archive keep 30d 1048576GiB"},
		{"keep off", "archive keep", map[string]any{"off": true}, "/archive keep off"},
		{"keep off false is nothing", "archive keep", map[string]any{"off": false}, "/archive keep"},
		{"rules shown", "rules", map[string]any{"room": "5440"}, "/rules 5440"},
		{"rules hours and skip", "rules", map[string]any{"room": "5440", "hours": "20:00-02:00", "skip": "回放,重播"}, "/rules 5440 hours 20:00-02:00 skip 回放,重播"},
		{"rules skip", "rules", map[string]any{"room": "5440", "skip": "回放"}, "/rules 5440 skip 回放"},
		{"rules skip words with spaces", "rules", map[string]any{"room": "5440", "skip": "回放 重播"}, "/rules 5440 skip 回放 重播"},
		{"rules hours off", "rules", map[string]any{"room": "5440", "hours": "off"}, "/rules 5440 hours off"},
		{"rules off", "rules", map[string]any{"room": "5440", "off": true}, "/rules 5440 off"},
		{"rules off false is nothing", "rules", map[string]any{"room": "5440", "off": false}, "/rules 5440"},
		// Refusals.
		{"not a room", "record", map[string]any{"room": "abc"}, "/record abc"},
		{"two rooms", "stop", map[string]any{"room": "1 2"}, "/stop 1 2"},
		{"no room", "watch", map[string]any{"room": " "}, "/watch"},
		{"page 0", "archive list", map[string]any{"page": int64(0)}, "/archive page 0"},
		{"id 0", "archive link", map[string]any{"id": int64(0)}, "/archive link 0"},
		{"no id", "archive delete", map[string]any{}, "/archive delete"},
		{"too many days", "archive keep", map[string]any{"days": int64(99999)}, "/archive keep 99999d"},
		{"too many GiB", "archive keep", map[string]any{"gib": int64(1 << 21)}, "/archive keep 2097152GiB"},
		{"keep off with days", "archive keep", map[string]any{"days": int64(30), "off": true}, "/archive keep 30d off"},
		{"a bad time", "rules", map[string]any{"room": "5440", "hours": "8-9"}, "/rules 5440 hours 8-9"},
		{"no skip words", "rules", map[string]any{"room": "5440", "skip": ",，"}, "/rules 5440 skip ,，"},
		{"rules off with hours", "rules", map[string]any{"room": "5440", "hours": "20:00-02:00", "off": true}, "/rules 5440 hours 20:00-02:00 off"},
		{"unknown command", "nope", map[string]any{}, "/nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, gotErr := readOptions(tt.command, tt.opts, "Asia/Shanghai")
			want, wantErr := readText(tt.text, "Asia/Shanghai")
			if !reflect.DeepEqual(gotErr, wantErr) {
				t.Fatalf("options %v: error %v; the text %q: %v", tt.opts, gotErr, tt.text, wantErr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("options %v read as %+v; the text %q as %+v", tt.opts, got, tt.text, want)
			}
		})
	}
}

// Options the table does not declare, or of another type than their kind
// carries, are the adapter's fault: an internal error, not a reply.
func TestOptionsChecked(t *testing.T) {
	for _, opts := range []map[string]any{{"room": int64(5440)}, {"rom": "5440"}} {
		_, err := readOptions("record", opts, "Asia/Shanghai")
		if err == nil || roomrec.ErrorCode(err) != roomrec.EINTERNAL {
			t.Errorf("record %v = %v, want an internal error", opts, err)
		}
	}
}
