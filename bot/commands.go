package bot

import (
	"fmt"
	"strings"
)

// Who says who may run a command in a group. In a private chat the sender
// is its admin.
type Who int

const (
	Anyone Who = iota
	// Admins are the chat's admins (Manage Server on Discord).
	Admins
	// AdminsToChange: anyone may read what the command shows, only admins
	// may change it (a command with arguments that set something).
	AdminsToChange
	// Owners are the people who run this roomrec (ROOMREC_OWNERS), and
	// only in a private chat with the bot.
	Owners
)

// ArgKind is what an argument holds, which says how a platform with typed
// options (Discord) offers it and what value Request.Options carries.
type ArgKind int

const (
	// RoomArg is a room number or a live.bilibili.com link: a string.
	RoomArg ArgKind = iota
	// RecordingArg is an archive id: an int64.
	RecordingArg
	// NumberArg is a whole number from Min to Max: an int64.
	NumberArg
	// TextArg is words the command reads itself: a string.
	TextArg
	// SwitchArg is on or off: a bool; true is the word "off" in text.
	SwitchArg
)

// Arg is one argument of a command.
type Arg struct {
	Name string
	Help string // what a platform that shows arguments says of it; at most 100 characters (Discord)
	Kind ArgKind
	// Required arguments must be given; platforms that can enforce it do.
	Required bool
	// Min and Max bound a NumberArg; 0 is no bound.
	Min, Max int64
	// Complete has platforms that can suggest values as the user types
	// offer the chat's rooms (RoomArg) or recordings (RecordingArg).
	Complete bool
}

// Command is one chat command, the same words on every platform. Text
// platforms (Telegram, the console) list Name and Help in their menus, and
// Handle reads their text against the table; platforms with typed options
// (Discord) render Brief and Args as their own commands and hand Handle the
// values.
type Command struct {
	Name  string
	Usage string // the arguments as typed, for /help
	Help  string // one line, for /help and text platforms' command menus
	// Brief is the description where a command is a form (Discord), in
	// that platform's words (a channel, Manage Server).
	Brief string
	Who   Who
	// Action is what a refusal says only admins can do, for Admins and
	// AdminsToChange: "record rooms".
	Action string
	// Slow commands may wait on Bilibili: a platform that must answer
	// within seconds (Discord) defers its answer to those it runs.
	Slow bool
	Args []Arg
	// Subcommands of a command that has them (archive); the first is
	// what the command alone means. Their names are the command's and
	// theirs: "archive keep".
	Subcommands []Command
}

// Bounds of the commands' numbers: beyond them a number is a typo, not a
// policy.
const (
	maxArchivePage = 100000 // far beyond any real archive
	maxKeepDays    = 3650
	maxKeepGiB     = 1 << 20
)

// Commands lists the commands in menu order.
var Commands = []Command{
	{Name: "record", Usage: "<room>", Help: "alert and record this room for this chat (admins)",
		Brief: "Alert and record a room in this channel", Who: Admins, Action: "record rooms", Slow: true,
		Args: []Arg{roomArgOf(false)}},
	{Name: "watch", Usage: "<room>", Help: "alert only (admins)",
		Brief: "Alert only", Who: Admins, Action: "watch rooms", Slow: true,
		Args: []Arg{roomArgOf(false)}},
	{Name: "stop", Usage: "<room>", Help: "stop following this room (admins)",
		Brief: "Stop following a room in this channel", Who: Admins, Action: "stop rooms",
		Args: []Arg{roomArgOf(true)}},
	{Name: "list", Help: "this chat's rooms and their state",
		Brief: "This channel's rooms and their state"},
	{Name: "archive", Usage: "[room] [page N] | delete <id> | link <id> | keep [<days>d] [<size>GiB] | keep off", Help: "this chat's recordings; how long it keeps them",
		Brief: "This channel's recordings",
		Subcommands: []Command{
			{Name: "list", Brief: "newest first", Args: []Arg{
				{Name: "room", Help: "only this room", Kind: RoomArg, Complete: true},
				{Name: "page", Help: "older recordings: page 2, 3…", Kind: NumberArg, Min: 1, Max: maxArchivePage}}},
			{Name: "delete", Brief: "remove from this channel's archive (Manage Server)", Who: Admins, Action: "delete recordings",
				Args: []Arg{recordingArg}},
			{Name: "link", Brief: "a download link", Args: []Arg{recordingArg}},
			// Reading the policy is for anyone; changing it is checked
			// for admins on every call.
			{Name: "keep", Brief: "how long this channel keeps recordings; set it (Manage Server)", Who: AdminsToChange, Action: "change how long recordings are kept",
				Args: []Arg{
					{Name: "days", Help: "keep this many days", Kind: NumberArg, Min: 1, Max: maxKeepDays},
					{Name: "gib", Help: "keep at most this many GiB", Kind: NumberArg, Min: 1, Max: maxKeepGiB},
					{Name: "off", Help: "remove this channel's limit", Kind: SwitchArg}}},
		}},
	{Name: "rules", Usage: "<room> [hours HH:MM-HH:MM] [skip word,word] | <room> off", Help: "which broadcasts of a room count here: alert, record, archive (admins set)",
		Brief: "Which broadcasts of a room count in this channel; set them (Manage Server)", Who: AdminsToChange, Action: "change rules",
		Args: []Arg{
			roomArgOf(true),
			{Name: "hours", Help: "only broadcasts that start in HH:MM-HH:MM, like 20:00-02:00; off for any hour", Kind: TextArg},
			{Name: "skip", Help: "a title with one of these words does not count: 回放,重播; off for none", Kind: TextArg},
			{Name: "off", Help: "clear this room's rules", Kind: SwitchArg}}},
	{Name: "status", Help: "rooms watched, recording now, disk free, the Bilibili login",
		Brief: "Rooms watched, recording now, disk free"},
	{Name: "login", Help: "log roomrec in to Bilibili by QR code, for full quality (owners, private chat)",
		Brief: "Log roomrec in to Bilibili by QR code, for full quality (owners, in a DM with me)", Who: Owners},
	{Name: "logout", Help: "forget the Bilibili account (owners, private chat)",
		Brief: "Forget the Bilibili account (owners, in a DM with me)", Who: Owners},
	{Name: "help", Help: "this list",
		Brief: "What roomrec can do"},
}

// roomArgOf is the one room a command is about.
func roomArgOf(complete bool) Arg {
	return Arg{Name: "room", Help: "room number or live.bilibili.com link", Kind: RoomArg, Required: true, Complete: complete}
}

// recordingArg is the recording a command is about.
var recordingArg = Arg{Name: "id", Help: "recording id from /archive", Kind: RecordingArg, Required: true, Complete: true}

// aliases are names a command also answers to in text: Telegram sends
// /start when someone opens a chat with the bot.
var aliases = map[string]string{"start": "help"}

// Lookup returns the command named name, a subcommand as "archive keep",
// or nil if there is none.
func Lookup(name string) *Command {
	top, sub, _ := strings.Cut(name, " ")
	for i := range Commands {
		c := &Commands[i]
		if c.Name != top {
			continue
		}
		if sub == "" {
			return c
		}
		for j := range c.Subcommands {
			if c.Subcommands[j].Name == sub {
				return &c.Subcommands[j]
			}
		}
	}
	return nil
}

// Arg returns the argument named name, or false if c has none.
func (c *Command) Arg(name string) (Arg, bool) {
	for _, a := range c.Args {
		if a.Name == name {
			return a, true
		}
	}
	return Arg{}, false
}

func help() string {
	var b strings.Builder
	b.WriteString("roomrec records Bilibili live rooms for this chat.\n")
	for _, c := range Commands {
		fmt.Fprintf(&b, "/%s %s: %s\n", c.Name, c.Usage, c.Help)
	}
	b.WriteString("<room> is a room number or a live.bilibili.com link.")
	return strings.ReplaceAll(b.String(), "  :", ":")
}
