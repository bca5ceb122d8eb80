package discord

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/bwmarrin/discordgo"
)

// Interactions are decoded from the JSON Discord sends, so numbers arrive
// as float64 exactly as they do in production. How bot reads each of these
// is checked against the text of the other platforms in bot's
// TestOptionsReadAsText.
func TestCommandOf(t *testing.T) {
	tests := []struct {
		name, data, want string
		opts             map[string]any
	}{
		{"room option", `{"name":"record","options":[{"name":"room","type":3,"value":"live.bilibili.com/5440?x=1"}]}`, "record", map[string]any{"room": "live.bilibili.com/5440?x=1"}},
		{"no options", `{"name":"list"}`, "list", map[string]any{}},
		{"archive list", `{"name":"archive","options":[{"name":"list","type":1,"options":[]}]}`, "archive list", map[string]any{}},
		{"archive list of a room", `{"name":"archive","options":[{"name":"list","type":1,"options":[{"name":"room","type":3,"value":"5440"}]}]}`, "archive list", map[string]any{"room": "5440"}},
		{"archive page of a room", `{"name":"archive","options":[{"name":"list","type":1,"options":[{"name":"room","type":3,"value":"5440"},{"name":"page","type":4,"value":2}]}]}`, "archive list", map[string]any{"room": "5440", "page": int64(2)}},
		{"large id stays a whole number", `{"name":"archive","options":[{"name":"delete","type":1,"options":[{"name":"id","type":4,"value":1000000}]}]}`, "archive delete", map[string]any{"id": int64(1000000)}},
		{"link", `{"name":"archive","options":[{"name":"link","type":1,"options":[{"name":"id","type":4,"value":7}]}]}`, "archive link", map[string]any{"id": int64(7)}},
		{"keep shown", `{"name":"archive","options":[{"name":"keep","type":1}]}`, "archive keep", map[string]any{}},
		{"keep days and size", `{"name":"archive","options":[{"name":"keep","type":1,"options":[{"name":"days","type":4,"value":30},{"name":"gib","type":4,"value":1048576}]}]}`, "archive keep", map[string]any{"days": int64(30), "gib": int64(1048576)}},
		{"keep off", `{"name":"archive","options":[{"name":"keep","type":1,"options":[{"name":"off","type":5,"value":true}]}]}`, "archive keep", map[string]any{"off": true}},
		{"keep off false", `{"name":"archive","options":[{"name":"keep","type":1,"options":[{"name":"off","type":5,"value":false}]}]}`, "archive keep", map[string]any{"off": false}},
		{"rules shown", `{"name":"rules","options":[{"name":"room","type":3,"value":"5440"}]}`, "rules", map[string]any{"room": "5440"}},
		{"rules hours and skip", `{"name":"rules","options":[{"name":"room","type":3,"value":"5440"},{"name":"hours","type":3,"value":"20:00-02:00"},{"name":"skip","type":3,"value":"回放,重播"}]}`, "rules", map[string]any{"room": "5440", "hours": "20:00-02:00", "skip": "回放,重播"}},
		{"rules room filled in last", `{"name":"rules","options":[{"name":"skip","type":3,"value":"回放"},{"name":"room","type":3,"value":"5440"}]}`, "rules", map[string]any{"room": "5440", "skip": "回放"}},
		{"rules off", `{"name":"rules","options":[{"name":"room","type":3,"value":"5440"},{"name":"off","type":5,"value":true}]}`, "rules", map[string]any{"room": "5440", "off": true}},
		{"rules off false", `{"name":"rules","options":[{"name":"room","type":3,"value":"5440"},{"name":"off","type":5,"value":false}]}`, "rules", map[string]any{"room": "5440", "off": false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var data discordgo.ApplicationCommandInteractionData
			if err := json.Unmarshal([]byte(tt.data), &data); err != nil {
				t.Fatal(err)
			}
			if name, opts := commandOf(data); name != tt.want || !reflect.DeepEqual(opts, tt.opts) {
				t.Errorf("commandOf = %q, %#v; want %q, %#v", name, opts, tt.want, tt.opts)
			}
		})
	}
}

// Every option the text rendering gives a meaning to is declared, so a
// renamed option cannot silently fall through to the default.
func TestCommandsDeclareKeepOptions(t *testing.T) {
	var keep *discordgo.ApplicationCommandOption
	for _, c := range Commands() {
		if c.Name != "archive" {
			continue
		}
		for _, o := range c.Options {
			if o.Name == "keep" {
				keep = o
			}
		}
	}
	if keep == nil {
		t.Fatal("/archive has no keep subcommand")
	}
	names := map[string]discordgo.ApplicationCommandOptionType{}
	for _, o := range keep.Options {
		names[o.Name] = o.Type
		if o.Required {
			t.Errorf("keep option %s is required; /archive keep alone must show the policy", o.Name)
		}
	}
	want := map[string]discordgo.ApplicationCommandOptionType{"days": discordgo.ApplicationCommandOptionInteger, "gib": discordgo.ApplicationCommandOptionInteger, "off": discordgo.ApplicationCommandOptionBoolean}
	for n, typ := range want {
		if names[n] != typ {
			t.Errorf("keep option %s has type %v, want %v", n, names[n], typ)
		}
	}
}

// /rules declares the options its text rendering names: the room, the
// hours and skip words as text, off as a switch, none but the room
// required, so /rules room: alone shows the rules.
func TestCommandsDeclareRulesOptions(t *testing.T) {
	var rules *discordgo.ApplicationCommand
	for _, c := range Commands() {
		if c.Name == "rules" {
			rules = c
		}
	}
	if rules == nil {
		t.Fatal("no /rules command")
	}
	if rules.DefaultMemberPermissions != nil {
		t.Error("/rules is hidden from members, who may read the rules")
	}
	want := map[string]discordgo.ApplicationCommandOptionType{
		"room": discordgo.ApplicationCommandOptionString, "hours": discordgo.ApplicationCommandOptionString,
		"skip": discordgo.ApplicationCommandOptionString, "off": discordgo.ApplicationCommandOptionBoolean,
	}
	if len(rules.Options) != len(want) {
		t.Errorf("/rules has %d options, want %d", len(rules.Options), len(want))
	}
	for _, o := range rules.Options {
		if o.Type != want[o.Name] {
			t.Errorf("option %s has type %v, want %v", o.Name, o.Type, want[o.Name])
		}
		if o.Required != (o.Name == "room") {
			t.Errorf("option %s required = %v", o.Name, o.Required)
		}
		if len(o.Description) > 100 {
			t.Errorf("option %s's description is %d long; Discord takes 100", o.Name, len(o.Description))
		}
	}
}
