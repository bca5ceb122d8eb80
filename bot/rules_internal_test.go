package bot

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"roomrec"
	"roomrec/storage"
)

func TestParseRules(t *testing.T) {
	hm := func(h, m int) int { return h*60 + m }
	tests := []struct {
		name string
		args string
		want rulesChange
	}{
		{"off", "off", rulesChange{off: true}},
		{"OFF in capitals", "OFF", rulesChange{off: true}},
		{"hours across midnight", "hours 20:00-02:00", rulesChange{hours: true, from: hm(20, 0), to: hm(2, 0)}},
		{"hours within a day", "hours 9:30-17:45", rulesChange{hours: true, from: hm(9, 30), to: hm(17, 45)}},
		{"hours ending at 24:00", "hours 18:00-24:00", rulesChange{hours: true, from: hm(18, 0), to: 0}},
		{"hours with spaces", "hours 20:00 - 02:00", rulesChange{hours: true, from: hm(20, 0), to: hm(2, 0)}},
		{"hours in full-width", "hours 20：00～02：00", rulesChange{hours: true, from: hm(20, 0), to: hm(2, 0)}},
		{"hours off", "hours off", rulesChange{hours: true}},
		{"skip words", "skip 回放,重播", rulesChange{skip: true, skipWords: []string{"回放", "重播"}}},
		{"skip with full-width commas and spaces", "skip 回放， 重播、rerun", rulesChange{skip: true, skipWords: []string{"回放", "重播", "rerun"}}},
		{"skip words separated by spaces", "skip 回放 重播", rulesChange{skip: true, skipWords: []string{"回放", "重播"}}},
		{"skip repeats dropped", "skip Rerun,rerun,回放", rulesChange{skip: true, skipWords: []string{"Rerun", "回放"}}},
		{"skip off", "skip off", rulesChange{skip: true}},
		{"hours off and skip", "hours off skip 回放", rulesChange{hours: true, skip: true, skipWords: []string{"回放"}}},
		{"skip off and hours", "skip off hours 20:00-02:00", rulesChange{hours: true, from: hm(20, 0), to: hm(2, 0), skip: true}},
		{"both", "hours 20:00-02:00 skip 回放", rulesChange{hours: true, from: hm(20, 0), to: hm(2, 0), skip: true, skipWords: []string{"回放"}}},
		{"both the other way round", "skip 回放,重播 hours 8:00-12:00", rulesChange{hours: true, from: hm(8, 0), to: hm(12, 0), skip: true, skipWords: []string{"回放", "重播"}}},
		{"keywords in capitals", "HOURS 20:00-02:00 Skip 回放", rulesChange{hours: true, from: hm(20, 0), to: hm(2, 0), skip: true, skipWords: []string{"回放"}}},
		{"twenty words", "skip " + strings.Repeat("w,", 19) + "x", rulesChange{skip: true, skipWords: []string{"w", "x"}}},
		{"a word of fifty characters", "skip " + strings.Repeat("回", 50), rulesChange{skip: true, skipWords: []string{strings.Repeat("回", 50)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRules(strings.Fields(tt.args), "5440", "Asia/Shanghai")
			if err != nil {
				t.Fatalf("parseRules(%q) = %v", tt.args, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseRules(%q) = %+v, want %+v", tt.args, got, tt.want)
			}
		})
	}
}

func TestParseRulesRefuses(t *testing.T) {
	many := make([]string, 21)
	for i := range many {
		many[i] = string(rune('a' + i))
	}
	tests := []struct {
		name, args, want string
	}{
		{"hours without a window", "hours", "Give the hours as HH:MM-HH:MM in Asia/Shanghai time"},
		{"hour 25", "hours 25:00-02:00", `"25:00" is not a time of day`},
		{"minute 60", "hours 20:60-02:00", `"20:60" is not a time of day`},
		{"no minutes", "hours 20-02", `"20" is not a time of day`},
		{"one time only", "hours 20:00", `"20:00" is not a window of hours`},
		{"letters", "hours ab:cd-02:00", `"ab:cd" is not a time of day`},
		{"a sign", "hours +8:00-10:00", `"+8:00" is not a time of day`},
		{"24:00 starting", "hours 24:00-02:00", `"24:00" is not a time of day`},
		{"an empty window", "hours 20:00-20:00", "20:00-20:00 is an empty window"},
		{"hours twice", "hours 20:00-22:00 hours 1:00-2:00", "Give the hours once"},
		{"skip nothing", "skip", "Give the words to skip"},
		{"skip only commas", "skip ,，,", "Give the words to skip"},
		{"skip twice", "skip a skip b", "Give the words to skip once"},
		{"21 words", "skip " + strings.Join(many, ","), "That is 21 words to skip; a room takes at most 20"},
		{"a word of 51 characters", "skip 回放," + strings.Repeat("x", 51), "is 51 characters long; a word to skip has at most 50"},
		{"off with more", "off hours 20:00-02:00", "off clears every rule and goes alone"},
		{"off after a part", "hours 20:00-02:00 off", "off clears every rule and goes alone"},
		{"off after skip words", "skip 回放 off", "off clears every rule and goes alone"},
		{"off after hours off", "hours off off", "off clears every rule and goes alone"},
		{"an unknown word", "sometimes", `I don't understand "sometimes"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseRules(strings.Fields(tt.args), "5440", "Asia/Shanghai")
			var ue *roomrec.Error
			if !errors.As(err, &ue) || !strings.Contains(ue.Message, tt.want) {
				t.Errorf("parseRules(%q) = %v, want a reply containing %q", tt.args, err, tt.want)
			}
		})
	}
}

func TestRulesCount(t *testing.T) {
	shanghai := Shanghai()
	newYork, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no zone database:", err)
	}
	at := func(loc *time.Location, month time.Month, day, h, m int) time.Time {
		return time.Date(2026, month, day, h, m, 0, 0, loc)
	}
	night := storage.Rules{HoursFrom: 20 * 60, HoursTo: 2 * 60}
	day := storage.Rules{HoursFrom: 9 * 60, HoursTo: 17 * 60}
	skip := storage.Rules{Skip: []string{"回放", "Rerun"}}
	tests := []struct {
		name  string
		rules storage.Rules
		loc   *time.Location
		start time.Time
		title string
		want  bool
	}{
		{"no rules", storage.Rules{}, shanghai, at(shanghai, 3, 1, 4, 0), "昨晚的回放", true},
		{"night: at its start", night, shanghai, at(shanghai, 3, 1, 20, 0), "", true},
		{"night: before midnight", night, shanghai, at(shanghai, 3, 1, 23, 59), "", true},
		{"night: at midnight", night, shanghai, at(shanghai, 3, 2, 0, 0), "", true},
		{"night: after midnight", night, shanghai, at(shanghai, 3, 2, 1, 59), "", true},
		{"night: at its end", night, shanghai, at(shanghai, 3, 2, 2, 0), "", false},
		{"night: in the afternoon", night, shanghai, at(shanghai, 3, 2, 15, 0), "", false},
		{"night: just before", night, shanghai, at(shanghai, 3, 1, 19, 59), "", false},
		{"day: inside", day, shanghai, at(shanghai, 3, 1, 12, 0), "", true},
		{"day: at its end", day, shanghai, at(shanghai, 3, 1, 17, 0), "", false},
		{"day: at night", day, shanghai, at(shanghai, 3, 1, 23, 0), "", false},
		// The start is read on the configured clock, whatever zone it
		// arrives in: 13:00 UTC is 21:00 in Shanghai.
		{"night: a UTC start read in Shanghai", night, shanghai, at(time.UTC, 3, 1, 13, 0), "", true},
		{"night: the same start read in UTC", night, time.UTC, at(time.UTC, 3, 1, 13, 0), "", false},
		// Shanghai keeps no daylight saving time: 21:00 is 21:00 in
		// January and in July.
		{"night in Shanghai in January", night, shanghai, at(time.UTC, 1, 15, 13, 0), "", true},
		{"night in Shanghai in July", night, shanghai, at(time.UTC, 7, 15, 13, 0), "", true},
		// Where the clocks change, the window is the wall clock: the
		// same UTC time is 20:30 in winter and 21:30 in summer in New
		// York, inside a window of 20:00-21:00 in winter only.
		{"New York winter", storage.Rules{HoursFrom: 20 * 60, HoursTo: 21 * 60}, newYork, time.Date(2026, 1, 16, 1, 30, 0, 0, time.UTC), "", true},
		{"New York summer", storage.Rules{HoursFrom: 20 * 60, HoursTo: 21 * 60}, newYork, time.Date(2026, 7, 16, 1, 30, 0, 0, time.UTC), "", false},
		{"skip: a word in the title", skip, shanghai, at(shanghai, 3, 1, 4, 0), "【回放】昨晚", false},
		{"skip: case does not matter", skip, shanghai, at(shanghai, 3, 1, 4, 0), "RERUN of yesterday", false},
		{"skip: no word in the title", skip, shanghai, at(shanghai, 3, 1, 4, 0), "今晚打游戏", true},
		{"both: hours fit, title does not", storage.Rules{HoursFrom: 20 * 60, HoursTo: 2 * 60, Skip: []string{"回放"}}, shanghai, at(shanghai, 3, 1, 21, 0), "回放", false},
		{"both: title fits, hours do not", storage.Rules{HoursFrom: 20 * 60, HoursTo: 2 * 60, Skip: []string{"回放"}}, shanghai, at(shanghai, 3, 1, 12, 0), "打游戏", false},
		{"both fit", storage.Rules{HoursFrom: 20 * 60, HoursTo: 2 * 60, Skip: []string{"回放"}}, shanghai, at(shanghai, 3, 1, 21, 0), "打游戏", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := counts(tt.rules, tt.loc, tt.start, tt.title); got != tt.want {
				t.Errorf("counts(%+v, %s, %s, %q) = %v, want %v", tt.rules, tt.loc, tt.start, tt.title, got, tt.want)
			}
		})
	}
}

func TestShortAndDescribedRules(t *testing.T) {
	tests := []struct {
		name             string
		rules            storage.Rules
		short, described string
	}{
		{"none", storage.Rules{}, "", "every broadcast counts"},
		{"hours", storage.Rules{HoursFrom: 20 * 60, HoursTo: 2 * 60}, "20:00-02:00", "only broadcasts that start 20:00-02:00 (Asia/Shanghai time) count"},
		{"skip", storage.Rules{Skip: []string{"回放", "重播"}}, "skip 回放,重播", "a title with 回放, 重播 does not count"},
		{"both", storage.Rules{HoursFrom: 9*60 + 5, HoursTo: 0, Skip: []string{"回放"}}, "09:05-00:00, skip 回放", "only broadcasts that start 09:05-00:00 (Asia/Shanghai time) count; a title with 回放 does not count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := shortRules(tt.rules); got != tt.short {
				t.Errorf("shortRules = %q, want %q", got, tt.short)
			}
			if got := describeRules(tt.rules, "Asia/Shanghai"); got != tt.described {
				t.Errorf("describeRules = %q, want %q", got, tt.described)
			}
		})
	}
}

// Without a zone database Shanghai is still UTC+8.
func TestShanghaiIsUTCPlus8(t *testing.T) {
	for _, month := range []time.Month{time.January, time.July} {
		_, offset := time.Date(2026, month, 1, 0, 0, 0, 0, Shanghai()).Zone()
		if offset != 8*60*60 {
			t.Errorf("Shanghai in %s is UTC%+d s, want +8 h", month, offset)
		}
	}
}
