package bot

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"roomrec"
	"roomrec/bilibili"
	"roomrec/storage"
)

// maxCommandLen bounds what the router reads; a real command is short.
const maxCommandLen = 512

// call is a command with its arguments, read from a request's text or its
// options and checked: what the router acts on. Each value has the same
// rules and the same refusals whichever way it came.
type call struct {
	name  string // the command, a subcommand as "archive keep"
	cmd   *Command
	room  int64              // the room the command names (its real or short id); 0 if none
	id    int64              // the archive id of archive delete and link
	page  int                // archive list's page, from 1
	keep  *storage.Retention // archive keep's new policy (zero: off); nil when it only asks
	rules rulesChange        // rules' change; empty when it only asks
}

// changes reports whether the call changes what it would otherwise only
// show, which for AdminsToChange only admins may.
func (c call) changes() bool { return c.keep != nil || c.rules.any() }

// readText reads a command typed as text against Commands. zone names the
// clock of /rules … hours, for its replies.
func readText(text, zone string) (call, error) {
	// /rules may carry many words to skip; every other command is short.
	if len(text) > maxRulesLen || len(text) > maxCommandLen && !strings.EqualFold(firstWord(text), "/rules") {
		return call{}, errTooLong
	}
	if !utf8.ValidString(text) {
		return call{}, userErr("That message is not valid text. Try /help.")
	}
	fields := strings.Fields(text)
	if len(fields) == 0 || !strings.HasPrefix(fields[0], "/") {
		return call{}, userErr("Commands start with /. Try /help.")
	}
	typed, args := strings.ToLower(strings.TrimPrefix(fields[0], "/")), fields[1:]
	name := cmp.Or(aliases[typed], typed)
	c := call{name: name, cmd: Lookup(name), page: 1}
	if c.cmd == nil || strings.Contains(name, " ") {
		return call{}, unknown(typed)
	}
	var err error
	switch name {
	case "record", "watch", "stop":
		c.room, err = roomArg(name, args)
	case "archive":
		err = c.archiveText(args)
	case "rules":
		if len(args) == 0 {
			return call{}, userErr("Usage: /rules <room> shows which broadcasts count here; /rules <room> hours 20:00-02:00 skip 回放,重播 sets it; /rules <room> off clears it.")
		}
		if c.room, err = roomArg("rules", args[:1]); err == nil {
			c.rules, err = parseRules(args[1:], strconv.FormatInt(c.room, 10), zone)
		}
	}
	// The other commands take no arguments, and words after them are
	// ignored.
	if err != nil {
		return call{}, err
	}
	return c, nil
}

// archiveText reads the words after /archive: delete <id>, link <id>,
// keep […], or [room] [page N].
func (c *call) archiveText(args []string) error {
	sub := "list"
	if len(args) > 0 {
		switch w := strings.ToLower(args[0]); w {
		case "delete", "link", "keep":
			sub, args = w, args[1:]
		}
	}
	c.name, c.cmd = "archive "+sub, Lookup("archive "+sub)
	var err error
	switch sub {
	case "delete", "link":
		if len(args) != 1 {
			return archiveIDUsage(sub)
		}
		id, perr := strconv.ParseInt(strings.TrimPrefix(args[0], "#"), 10, 64)
		c.id, err = archiveID(id, perr == nil, args[0])
	case "keep":
		if len(args) > 0 {
			var keep storage.Retention
			keep, err = parseKeep(args)
			c.keep = &keep
		}
	case "list":
		if n := len(args); n >= 2 && strings.EqualFold(args[n-2], "page") {
			p, perr := strconv.ParseInt(args[n-1], 10, 64)
			if c.page, err = pageNumber(p, perr == nil, args[n-1]); err != nil {
				return err
			}
			args = args[:n-2]
		}
		if len(args) > 1 {
			return userErr("Usage: %s.", archiveUsage)
		}
		if len(args) == 1 {
			c.room, err = roomArg("archive", args)
		}
	}
	return err
}

// readOptions reads a command given as typed options (Discord's), each by
// the name of its Arg, valued as its Kind says.
func readOptions(name string, opts map[string]any, zone string) (call, error) {
	c := call{name: name, cmd: Lookup(name), page: 1}
	if c.cmd != nil && len(c.cmd.Subcommands) > 0 {
		c.name = name + " " + c.cmd.Subcommands[0].Name
		c.cmd = &c.cmd.Subcommands[0]
	}
	if c.cmd == nil {
		return call{}, unknown(name)
	}
	o, err := checkOptions(c.cmd, opts)
	if err != nil {
		return call{}, err
	}
	switch c.name {
	case "record", "watch", "stop":
		c.room, err = roomArg(c.name, strings.Fields(o.text("room")))
	case "archive list":
		if p, ok := o.number("page"); ok {
			if c.page, err = pageNumber(p, true, strconv.FormatInt(p, 10)); err != nil {
				return call{}, err
			}
		}
		switch room := strings.Fields(o.text("room")); {
		case len(room) > 1:
			err = userErr("Usage: %s.", archiveUsage)
		case len(room) == 1:
			c.room, err = roomArg("archive", room)
		}
	case "archive delete", "archive link":
		sub := strings.TrimPrefix(c.name, "archive ")
		id, ok := o.number("id")
		if !ok {
			return call{}, archiveIDUsage(sub)
		}
		c.id, err = archiveID(id, true, strconv.FormatInt(id, 10))
	case "archive keep":
		c.keep, err = keepOptions(o)
	case "rules":
		if c.room, err = roomArg("rules", strings.Fields(o.text("room"))); err == nil {
			c.rules, err = rulesOptions(o, strconv.FormatInt(c.room, 10), zone)
		}
	}
	if err != nil {
		return call{}, err
	}
	return c, nil
}

// options are a command's typed options, checked against its Args.
type options map[string]any

func (o options) text(name string) string { s, _ := o[name].(string); return s }
func (o options) on(name string) bool     { b, _ := o[name].(bool); return b }
func (o options) number(name string) (int64, bool) {
	n, ok := o[name].(int64)
	return n, ok
}
func (o options) has(name string) bool { _, ok := o[name]; return ok }

// checkOptions returns opts if each is an argument of cmd of the Go type
// its kind carries and no text is longer than a typed command may be. An
// option the table does not declare is a fault of the platform's adapter,
// not of the user.
func checkOptions(cmd *Command, opts map[string]any) (options, error) {
	for name, v := range opts {
		a, ok := cmd.Arg(name)
		if !ok {
			return nil, fmt.Errorf("command %s has no option %q", cmd.Name, name)
		}
		var fits bool
		switch a.Kind {
		case RoomArg, TextArg:
			var s string
			s, fits = v.(string)
			limit := maxCommandLen
			if a.Name == "skip" {
				limit = maxRulesLen // as many words as /rules takes
			}
			if len(s) > limit {
				return nil, errTooLong
			}
		case RecordingArg, NumberArg:
			_, fits = v.(int64)
		case SwitchArg:
			_, fits = v.(bool)
		}
		if !fits {
			return nil, fmt.Errorf("option %s of %s is a %T", name, cmd.Name, v)
		}
	}
	return options(opts), nil
}

var errTooLong = userErr("That message is too long for a command. Try /help.")

func unknown(name string) error {
	return userErr("I don't know /%s. Try /help.", shorten(name, 32))
}

// roomArg reads the one room argument of a command, given as words.
func roomArg(cmd string, words []string) (int64, error) {
	if len(words) != 1 {
		return 0, userErr("Usage: /%s <room>, where <room> is a room number or a live.bilibili.com link.", cmd)
	}
	id, err := bilibili.ParseRoomRef(words[0])
	if err != nil {
		return 0, userErr("%s. Usage: /%s <room>.", roomrec.ErrorMessage(err), cmd)
	}
	return id, nil
}

// archiveUsage lists the forms of /archive, for replies to a wrong one.
const archiveUsage = "/archive [room] [page N], /archive delete <id>, /archive link <id> or /archive keep"

func archiveIDUsage(sub string) error {
	return userErr("Usage: /archive %s <id>, with an id from /archive.", sub)
}

// archiveID checks the id of /archive delete and link: id, if ok (it was a
// number), as typed in word.
func archiveID(id int64, ok bool, word string) (int64, error) {
	if !ok || id <= 0 {
		return 0, userErr("%q is not an archive id. /archive lists them.", shorten(word, 32))
	}
	return id, nil
}

// pageNumber checks /archive's page: p, if ok (it was a number), as typed
// in word.
func pageNumber(p int64, ok bool, word string) (int, error) {
	if !ok || p < 1 || p > maxArchivePage {
		return 0, userErr("%q is not a page number. Usage: /archive [room] [page N].", shorten(word, 32))
	}
	return int(p), nil
}

// keepOptions reads /archive keep's days, gib and off; nil when none is
// given (or off is false): the policy is only shown.
func keepOptions(o options) (*storage.Retention, error) {
	days, hasDays := o.number("days")
	gib, hasGiB := o.number("gib")
	if !hasDays && !hasGiB && !o.on("off") {
		return nil, nil
	}
	var keep storage.Retention
	if hasDays {
		if err := keepDays(&keep, days, fmt.Sprintf("%dd", days)); err != nil {
			return nil, err
		}
	}
	if hasGiB {
		if err := keepGiB(&keep, gib, fmt.Sprintf("%dGiB", gib)); err != nil {
			return nil, err
		}
	}
	if o.on("off") && (hasDays || hasGiB) {
		// off goes alone, as in text.
		return nil, notKeepNumber("off")
	}
	return &keep, nil
}

// rulesOptions reads /rules' hours, skip and off for room.
func rulesOptions(o options, room, zone string) (rulesChange, error) {
	var c rulesChange
	if o.has("hours") {
		value, off := partValue(o.text("hours"))
		if err := c.setHours(off, value, room, zone); err != nil {
			return c, err
		}
	}
	if o.has("skip") {
		value, off := partValue(o.text("skip"))
		if err := c.setSkip(off, value, room); err != nil {
			return c, err
		}
	}
	if o.on("off") {
		if c.hours || c.skip {
			return c, offAlone(room)
		}
		c.off = true
	}
	return c, nil
}

// partValue splits the text of a /rules part into its words, or reports
// that it is off.
func partValue(s string) (value []string, off bool) {
	words := strings.Fields(s)
	if len(words) == 1 && strings.EqualFold(words[0], "off") {
		return nil, true
	}
	return words, false
}

// userErr is a refusal or a problem with the input, told to the user as
// is.
func userErr(format string, args ...any) error {
	return roomrec.Errorf(roomrec.EINVALID, format, args...)
}

// refuse is a refusal: the sender may not do this.
func refuse(format string, args ...any) error {
	return roomrec.Errorf(roomrec.EFORBIDDEN, format, args...)
}
