package bot

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"roomrec"
	"roomrec/recording"
	"roomrec/storage"
)

// Limits of /rules … skip: enough for every way a streamer labels a replay,
// and few enough that a title is checked at once.
const (
	maxSkipWords   = 20
	maxSkipWordLen = 50 // characters
)

// maxRulesLen bounds a /rules command, which may carry maxSkipWords words
// of maxSkipWordLen characters each, of up to 4 bytes, and their commas.
const maxRulesLen = 64 + maxSkipWords*(maxSkipWordLen*utf8.UTFMax+1)

// Shanghai is the default zone of /rules … hours: the clock of the
// streamers roomrec records. Asia/Shanghai has had no daylight saving time
// since 1991, so a fixed offset stands in where the zone database is
// missing.
var Shanghai = sync.OnceValue(func() *time.Location {
	if loc, err := time.LoadLocation("Asia/Shanghai"); err == nil {
		return loc
	}
	return time.FixedZone("Asia/Shanghai", 8*60*60)
})

// orShanghai is loc, or Shanghai when it is nil.
func orShanghai(loc *time.Location) *time.Location {
	if loc == nil {
		return Shanghai()
	}
	return loc
}

// counts reports whether a broadcast that started at start with title
// counts for a chat with rules r, the hours read on loc's clock. A window
// is the wall clock of the day, so across a change of daylight saving time
// 20:00 stays 20:00.
func counts(r storage.Rules, loc *time.Location, start time.Time, title string) bool {
	if r.HasHours() {
		t := start.In(loc)
		m := t.Hour()*60 + t.Minute()
		in := r.HoursFrom <= m && m < r.HoursTo
		if r.HoursTo < r.HoursFrom { // across midnight
			in = m >= r.HoursFrom || m < r.HoursTo
		}
		if !in {
			return false
		}
	}
	return skipWord(r, title) == ""
}

// skipWord returns the first of the rules' skip words that title contains,
// ignoring case, or "".
func skipWord(r storage.Rules, title string) string {
	lower := strings.ToLower(title)
	for _, w := range r.Skip {
		if strings.Contains(lower, strings.ToLower(w)) {
			return w
		}
	}
	return ""
}

// rulesChange is what a /rules command asks: each part it names replaces
// that part of the rules, and off clears them all.
type rulesChange struct {
	off       bool
	hours     bool // the hours are set (or cleared, when from == to)
	from, to  int
	skip      bool // the skip words are set (or cleared, when empty)
	skipWords []string
}

// apply returns r changed as c says.
func (c rulesChange) apply(r storage.Rules) storage.Rules {
	if c.off {
		return storage.Rules{}
	}
	if c.hours {
		r.HoursFrom, r.HoursTo = c.from, c.to
	}
	if c.skip {
		r.Skip = c.skipWords
	}
	return r
}

// rulesKeywords start the parts of a /rules command; off, alone, is one
// more.
var rulesKeywords = map[string]bool{"hours": true, "skip": true}

// any reports whether c changes anything.
func (c rulesChange) any() bool { return c.off || c.hours || c.skip }

// parseRules reads the words after /rules <room>: off alone, or hours
// and skip, each at most once, in either order. The hours are one window,
// HH:MM-HH:MM, or off; the words to skip are separated by commas (or
// spaces), or off. zone names the clock, for the replies.
func parseRules(args []string, room, zone string) (rulesChange, error) {
	var c rulesChange
	if len(args) == 1 && strings.EqualFold(args[0], "off") {
		c.off = true
		return c, nil
	}
	for i := 0; i < len(args); {
		key := strings.ToLower(args[i])
		if !rulesKeywords[key] {
			if key == "off" {
				return c, offAlone(room)
			}
			return c, userErr("I don't understand %q. Usage: /rules %s hours 20:00-02:00 skip 回放,重播, or /rules %s off.", shorten(args[i], 32), room, room)
		}
		// A part's value runs to the next keyword, or to an off that
		// does not follow the keyword at once (hours off clears the
		// hours; hours 20:00-02:00 off is two things).
		j := i + 1
		partOff := j < len(args) && strings.EqualFold(args[j], "off")
		if partOff {
			j++
		}
		for !partOff && j < len(args) && !rulesKeywords[strings.ToLower(args[j])] && !strings.EqualFold(args[j], "off") {
			j++
		}
		value := args[i+1 : j]
		i = j
		var err error
		switch key {
		case "hours":
			if c.hours {
				return c, userErr("Give the hours once: one window, like /rules %s hours 20:00-02:00.", room)
			}
			err = c.setHours(partOff, value, room, zone)
		case "skip":
			if c.skip {
				return c, userErr("Give the words to skip once, separated by commas: /rules %s skip 回放,重播.", room)
			}
			err = c.setSkip(partOff, value, room)
		}
		if err != nil {
			return c, err
		}
	}
	return c, nil
}

// offAlone refuses an off given with other parts.
func offAlone(room string) error {
	return userErr("/rules %s off clears every rule and goes alone. To clear one part: hours off, or skip off.", room)
}

// setHours sets the window of hours to the one in value, or clears it when
// off.
func (c *rulesChange) setHours(off bool, value []string, room, zone string) error {
	c.hours = true
	if off {
		return nil
	}
	from, to, err := parseWindow(strings.Join(value, ""), room, zone)
	c.from, c.to = from, to
	return err
}

// setSkip sets the words to skip to those in value, or clears them when
// off.
func (c *rulesChange) setSkip(off bool, value []string, room string) error {
	c.skip = true
	if off {
		return nil
	}
	words, err := parseSkipWords(strings.Join(value, ","), room)
	c.skipWords = words
	return err
}

// parseWindow reads HH:MM-HH:MM into minutes after midnight. 24:00 ends a
// window at midnight.
func parseWindow(s, room, zone string) (from, to int, err error) {
	usage := fmt.Sprintf("Give the hours as HH:MM-HH:MM in %s time, like /rules %s hours 20:00-02:00.", zone, room)
	if s == "" {
		return 0, 0, userErr("%s", usage)
	}
	s = strings.NewReplacer("：", ":", "～", "-", "~", "-", "–", "-", "—", "-").Replace(s)
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, userErr("%q is not a window of hours. %s", shorten(s, 32), usage)
	}
	if from, ok = parseClock(a, false); !ok {
		return 0, 0, userErr("%q is not a time of day. %s", shorten(a, 16), usage)
	}
	if to, ok = parseClock(b, true); !ok {
		return 0, 0, userErr("%q is not a time of day. %s", shorten(b, 16), usage)
	}
	if from == to {
		return 0, 0, userErr("%s is an empty window. For any hour: /rules %s hours off.", s, room)
	}
	return from, to, nil
}

// parseClock reads H:MM or HH:MM, 00:00 to 23:59, and 24:00 (as 0) where
// a window ends.
func parseClock(s string, end bool) (int, bool) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) < 1 || len(h) > 2 || len(m) != 2 {
		return 0, false
	}
	hour, err1 := strconv.Atoi(h)
	minute, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || h[0] == '+' || h[0] == '-' || m[0] == '+' || m[0] == '-' || minute > 59 {
		return 0, false
	}
	switch {
	case hour == 24 && minute == 0 && end:
		return 0, true
	case hour > 23:
		return 0, false
	}
	return hour*60 + minute, true
}

// parseSkipWords splits words at commas (ASCII, full-width or 、),
// dropping empty ones and repeats.
func parseSkipWords(s, room string) ([]string, error) {
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '，' || r == '、' })
	var words []string
	for _, p := range parts {
		w := strings.TrimSpace(p)
		if w == "" || slices.ContainsFunc(words, func(x string) bool { return strings.EqualFold(x, w) }) {
			continue
		}
		if n := utf8.RuneCountInString(w); n > maxSkipWordLen {
			return nil, userErr("%q is %d characters long; a word to skip has at most %d.", shorten(w, 32), n, maxSkipWordLen)
		}
		words = append(words, w)
	}
	switch {
	case len(words) == 0:
		return nil, userErr("Give the words to skip, separated by commas: /rules %s skip 回放,重播. To skip none: skip off.", room)
	case len(words) > maxSkipWords:
		return nil, userErr("That is %d words to skip; a room takes at most %d.", len(words), maxSkipWords)
	}
	return words, nil
}

// formatClock writes minutes after midnight as HH:MM.
func formatClock(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// formatHours writes the rules' window as HH:MM-HH:MM.
func formatHours(r storage.Rules) string {
	return formatClock(r.HoursFrom) + "-" + formatClock(r.HoursTo)
}

// shortRules is the rules in a few words, for /list; "" when there are
// none.
func shortRules(r storage.Rules) string {
	var parts []string
	if r.HasHours() {
		parts = append(parts, formatHours(r))
	}
	if len(r.Skip) > 0 {
		parts = append(parts, "skip "+strings.Join(r.Skip, ","))
	}
	return strings.Join(parts, ", ")
}

// describeRules says in full which broadcasts count under r.
func describeRules(r storage.Rules, zone string) string {
	if r.IsZero() {
		return "every broadcast counts"
	}
	var parts []string
	if r.HasHours() {
		parts = append(parts, fmt.Sprintf("only broadcasts that start %s (%s time) count", formatHours(r), zone))
	}
	if len(r.Skip) > 0 {
		parts = append(parts, "a title with "+strings.Join(r.Skip, ", ")+" does not count")
	}
	return strings.Join(parts, "; ")
}

// rules is /rules <room> [hours HH:MM-HH:MM] [skip word,word] and
// /rules <room> off: anyone may read a room's rules, admins change them.
func (r *Router) rules(ctx context.Context, req Request, c call) (string, error) {
	id, change, setting := c.room, c.rules, c.changes()
	loc := orShanghai(r.opts.Location)
	chat, err := r.chat(ctx, req)
	if err != nil {
		return "", err
	}
	r.following.Lock()
	defer r.following.Unlock()
	sub, err := r.mustFollow(ctx, chat.ID, id)
	if err != nil {
		return "", err
	}
	rules := sub.Rules
	if setting {
		rules = change.apply(sub.Rules)
		if err := r.store.SetRules(ctx, chat.ID, sub.RoomID, rules); err != nil {
			return "", err
		}
		// The broadcast in progress is judged again at once.
		r.recorder.Recheck(sub.RoomID)
	}
	text := fmt.Sprintf("In this chat, for %s: %s.", roomName(sub.Room), describeRules(rules, loc.String()))
	if !setting {
		return text, nil
	}
	for _, t := range r.recorder.List() {
		if t.RoomID != sub.RoomID || !t.Live {
			continue
		}
		if counts(rules, loc, t.LiveStart, t.Title) {
			text += " The broadcast now live counts."
		} else {
			text += " The broadcast now live does not count: no more of it is alerted or archived here."
		}
	}
	return text, nil
}

// Gate tells the recorder whether a broadcast is recorded: when a chat
// that records the room counts it under its rules. Its Admit is
// recording.Options.Gate.
type Gate struct {
	store Subscribers
	loc   *time.Location
	log   *slog.Logger
}

// NewGate returns a Gate reading rules from store, their hours on loc's
// clock (Shanghai when nil).
func NewGate(store Subscribers, loc *time.Location, logger *slog.Logger) *Gate {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Gate{store: store, loc: orShanghai(loc), log: logger}
}

// Admit reports whether a broadcast of room is to be recorded: whether a
// chat that records the room counts it. Rules only ever take away: a room
// no chat records as far as the database knows (it is changing now) is
// admitted, and so is every broadcast when the rules cannot be read, since
// a replay recorded by mistake costs less than a broadcast lost.
func (g *Gate) Admit(room recording.Room, b recording.BroadcastInfo) bool {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	log := g.log.With(roomrec.LogRoom(room.RoomID))
	subs, err := g.store.RoomSubscribers(ctx, room.RoomID)
	if err != nil {
		log.Error("rules not read; recording the broadcast", roomrec.LogErr(err))
		return true
	}
	recorders := 0
	for _, sub := range subs {
		if sub.Mode != storage.Record {
			continue
		}
		recorders++
		if counts(sub.Rules, g.loc, b.Start, b.Title) {
			return true
		}
	}
	if recorders == 0 {
		return true
	}
	log.Info("no recording chat's rules count the broadcast; not recording it", slog.String("title", b.Title), slog.Time("start", b.Start))
	return false
}
