package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"roomrec/bilibili/bilibilitest"
	"roomrec/bot/discord/discordtest"
	"roomrec/bot/telegram/telegramtest"
)

// otherGroupID is a second Telegram group following the same room.
const otherGroupID = -1005678

// askIn sends a command to a chat and returns the bot's reply there.
func askIn(t *testing.T, tg *telegramtest.Server, chat, user int64, text string) string {
	t.Helper()
	before := len(tg.Calls())
	tg.Command(chat, "supergroup", user, text)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		calls := tg.Calls()
		for _, c := range calls[min(before, len(calls)):] {
			if c.Method == "sendMessage" && c.ReplyTo != 0 && c.ChatID == chat {
				return c.Text
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no reply to %q in chat %d; calls: %+v", text, chat, tg.Calls()[before:])
	return ""
}

// alertsIn returns the alerts posted in a chat.
func alertsIn(tg *telegramtest.Server, chat int64) []telegramtest.Call {
	var out []telegramtest.Call
	for _, c := range alerts(tg) {
		if c.ChatID == chat {
			out = append(out, c)
		}
	}
	return out
}

// noticesIn returns the messages a chat was sent that answer no command
// and are no alert: title changes.
func noticesIn(tg *telegramtest.Server, chat int64) []telegramtest.Call {
	var out []telegramtest.Call
	for _, c := range tg.Calls() {
		if c.Method == "sendMessage" && c.ReplyTo == 0 && c.ChatID == chat {
			out = append(out, c)
		}
	}
	return out
}

// endedIn reports whether an alert in chat was edited to say the broadcast
// ended.
func endedIn(tg *telegramtest.Server, chat int64, n int) bool {
	ended := 0
	for _, c := range tg.Calls() {
		if c.Method == "editMessageCaption" && c.ChatID == chat && strings.Contains(c.Text, "Ended after") {
			ended++
		}
	}
	return ended >= n
}

// window returns hours HH:MM-HH:MM on Shanghai's clock, from and to
// hours from now.
func window(from, to time.Duration) string {
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		panic(err)
	}
	now := time.Now().In(shanghai)
	return now.Add(from).Format("15:04") + "-" + now.Add(to).Format("15:04")
}

// finished returns the room's finished videos and those still being
// written.
func finished(dir string) (files, parts []string) {
	files, _ = filepath.Glob(filepath.Join(dir, "recordings", "5440", "*.flv"))
	parts, _ = filepath.Glob(filepath.Join(dir, "recordings", "5440", "*.flv.part"))
	return files, parts
}

// A broadcast whose title has a word to skip is neither alerted nor
// downloaded; a new title that counts brings the alert and starts the
// recording, and one that does not count again finishes the file, which
// stays in the archive.
func TestRulesSkipAReplayAndFollowTheTitle(t *testing.T) {
	sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 4})
	room := sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, ShortID: 1, Anchor: "主播", Title: "昨晚的回放"})
	tg := telegramtest.Start(t, testToken)
	tg.SetAdmin(groupID, adminID)
	dir := t.TempDir()
	startServe(t, sim, tg, dir)

	if r := ask(t, tg, adminID, "/record 5440"); !strings.Contains(r, "Recording 主播") {
		t.Fatalf("/record = %q", r)
	}
	if r := ask(t, tg, memberID, "/rules 5440"); !strings.Contains(r, "every broadcast counts") {
		t.Errorf("/rules before any = %q", r)
	}
	if r := ask(t, tg, adminID, "/rules 1 skip 回放,重播"); !strings.Contains(r, "a title with 回放, 重播 does not count") || !strings.Contains(r, "room 5440") {
		t.Fatalf("/rules skip = %q", r)
	}
	waitFor(t, 5*time.Second, "danmaku connection", func() bool { return sim.DanmakuConnections(5440) == 1 })

	room.GoLive()
	time.Sleep(2 * time.Second) // both LIVE pushes and a poll
	if a := alerts(tg); len(a) != 0 {
		t.Errorf("alerts for a replay: %+v", a)
	}
	if n := room.StreamRequests(); n != 0 {
		t.Errorf("%d stream requests for a broadcast no chat counts", n)
	}
	if r := ask(t, tg, memberID, "/list"); !strings.Contains(r, "live, does not count here") || !strings.Contains(r, "skip 回放,重播") {
		t.Errorf("/list = %q, want the broadcast left out and the rules in short", r)
	}

	room.SetTitle("正式开播")
	waitFor(t, 5*time.Second, "the alert the new title brings", func() bool { return len(alerts(tg)) == 1 })
	if a := alerts(tg)[0]; !strings.Contains(a.Text, "正式开播") || !strings.Contains(a.Text, "recording") {
		t.Errorf("alert = %q, want the new title, recording", a.Text)
	}
	waitFor(t, 5*time.Second, "the recording to start", func() bool {
		_, parts := finished(dir)
		return len(parts) == 1
	})
	time.Sleep(1500 * time.Millisecond)

	room.SetTitle("重播一下")
	waitFor(t, 5*time.Second, "the file finished", func() bool {
		files, parts := finished(dir)
		return len(files) == 1 && len(parts) == 0
	})
	waitFor(t, 5*time.Second, "the chat told", func() bool {
		for _, n := range noticesIn(tg, groupID) {
			if strings.Contains(n.Text, "重播一下") && strings.Contains(n.Text, "no longer counts for this chat (its title has 重播)") {
				return true
			}
		}
		return false
	})
	requests := room.StreamRequests()
	time.Sleep(1500 * time.Millisecond)
	if n := room.StreamRequests(); n != requests {
		t.Errorf("%d stream requests after the broadcast stopped counting", n-requests)
	}
	if n := len(alerts(tg)); n != 1 {
		t.Errorf("%d alerts, want the one", n)
	}
	room.EndLive()
	waitFor(t, 10*time.Second, "the alert edited", func() bool { return endedIn(tg, groupID, 1) })
	if r := ask(t, tg, memberID, "/archive"); !strings.Contains(r, "1 recordings") || !strings.Contains(r, "正式开播") {
		t.Errorf("/archive = %q, want the file recorded while the broadcast counted", r)
	}
}

// Two chats with their own rules on one room each get the alerts and the
// archive entries of the broadcasts that count for them; a broadcast that
// counts for neither is not recorded at all; the rules survive a restart.
func TestRulesOfTwoChatsOnOneRoom(t *testing.T) {
	sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 4})
	room := sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, Anchor: "主播", Title: "今晚打游戏"})
	tg := telegramtest.Start(t, testToken)
	tg.SetAdmin(groupID, adminID)
	tg.SetAdmin(otherGroupID, adminID)
	dir := t.TempDir()
	stop := startServe(t, sim, tg, dir)

	later := window(2*time.Hour, 3*time.Hour) // excludes now
	for _, c := range []struct {
		chat      int64
		cmd, want string
	}{
		{groupID, "/record 5440", "Recording 主播"},
		{groupID, "/rules 5440 hours " + later, "only broadcasts that start " + later + " (Asia/Shanghai time) count"},
		{otherGroupID, "/record 5440", "Recording 主播"},
		{otherGroupID, "/rules 5440 skip 回放", "a title with 回放 does not count"},
	} {
		if r := askIn(t, tg, c.chat, adminID, c.cmd); !strings.Contains(r, c.want) {
			t.Fatalf("%s in chat %d = %q, want %q", c.cmd, c.chat, r, c.want)
		}
	}
	if r := askIn(t, tg, groupID, memberID, "/list"); !strings.Contains(r, "(record; "+later+")") {
		t.Errorf("/list = %q, want the hours in short", r)
	}
	waitFor(t, 5*time.Second, "danmaku connection", func() bool { return sim.DanmakuConnections(5440) == 1 })

	// 1: outside the first chat's hours, no replay: the second chat's.
	room.GoLive()
	waitFor(t, 5*time.Second, "the second chat's alert", func() bool { return len(alertsIn(tg, otherGroupID)) == 1 })
	time.Sleep(2 * time.Second)
	if a := alertsIn(tg, groupID); len(a) != 0 {
		t.Errorf("the first chat was alerted outside its hours: %+v", a)
	}
	room.EndLive()
	waitFor(t, 10*time.Second, "the second chat's alert edited", func() bool { return endedIn(tg, otherGroupID, 1) })
	if r := askIn(t, tg, groupID, memberID, "/archive"); !strings.Contains(r, "No recordings") {
		t.Errorf("first chat's /archive = %q, want nothing", r)
	}
	if r := askIn(t, tg, otherGroupID, memberID, "/archive"); !strings.Contains(r, "1 recordings") {
		t.Errorf("second chat's /archive = %q, want the broadcast", r)
	}

	// 2: a replay outside the first chat's hours counts for neither.
	room.SetTitle("回放")
	time.Sleep(500 * time.Millisecond)
	requests := room.StreamRequests()
	room.GoLive()
	time.Sleep(2500 * time.Millisecond)
	if n := room.StreamRequests(); n != requests {
		t.Errorf("%d stream requests for a broadcast no chat counts", n-requests)
	}
	if a, b := len(alertsIn(tg, groupID)), len(alertsIn(tg, otherGroupID)); a != 0 || b != 1 {
		t.Errorf("alerts %d and %d after a broadcast counting for neither, want 0 and 1", a, b)
	}
	room.EndLive()
	time.Sleep(500 * time.Millisecond)

	// A restart keeps the rules.
	stop()
	startServe(t, sim, tg, dir)
	if r := askIn(t, tg, groupID, memberID, "/rules 5440"); !strings.Contains(r, later) {
		t.Errorf("first chat's rules after a restart = %q, want the hours %s", r, later)
	}
	if r := askIn(t, tg, otherGroupID, memberID, "/rules 5440"); !strings.Contains(r, "a title with 回放 does not count") {
		t.Errorf("second chat's rules after a restart = %q", r)
	}
	now := window(-time.Hour, time.Hour)
	if r := askIn(t, tg, groupID, adminID, "/rules 5440 hours "+now); !strings.Contains(r, now) {
		t.Fatalf("/rules hours %s = %q", now, r)
	}
	waitFor(t, 5*time.Second, "danmaku connection", func() bool { return sim.DanmakuConnections(5440) == 1 })

	// 3: a replay within the first chat's hours: the first chat's.
	room.GoLive()
	waitFor(t, 5*time.Second, "the first chat's alert", func() bool { return len(alertsIn(tg, groupID)) == 1 })
	waitFor(t, 5*time.Second, "the recording to start", func() bool { return room.StreamRequests() > requests })
	time.Sleep(2 * time.Second)
	if b := len(alertsIn(tg, otherGroupID)); b != 1 {
		t.Errorf("second chat has %d alerts, want still 1: the replay is not its", b)
	}
	room.EndLive()
	waitFor(t, 10*time.Second, "the first chat's alert edited", func() bool { return endedIn(tg, groupID, 1) })
	if r := askIn(t, tg, groupID, memberID, "/archive"); !strings.Contains(r, "1 recordings") || !strings.Contains(r, "回放") {
		t.Errorf("first chat's /archive = %q, want the replay", r)
	}
	if r := askIn(t, tg, otherGroupID, memberID, "/archive"); !strings.Contains(r, "1 recordings") || strings.Contains(r, "回放") {
		t.Errorf("second chat's /archive = %q, want only its first broadcast", r)
	}
}

// Each bad /rules gets a reply that says what is wrong, and changes
// nothing.
func TestRulesBadInput(t *testing.T) {
	sim := bilibilitest.Start(t, bilibilitest.Config{})
	sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, Anchor: "主播", Title: "今晚打游戏"})
	sim.AddRoom(bilibilitest.RoomConfig{RoomID: 6666, Anchor: "另一个"})
	tg := telegramtest.Start(t, testToken)
	tg.SetAdmin(groupID, adminID)
	startServe(t, sim, tg, t.TempDir())
	ask(t, tg, adminID, "/record 5440")
	const set = "only broadcasts that start 20:00-02:00 (Asia/Shanghai time) count; a title with 回放 does not count"
	if r := ask(t, tg, adminID, "/rules 5440 hours 20:00-02:00 skip 回放"); !strings.Contains(r, set) {
		t.Fatalf("/rules = %q", r)
	}
	words := make([]string, 21)
	for i := range words {
		words[i] = fmt.Sprintf("词%d", i)
	}
	tests := []struct {
		name       string
		user       int64
		text, want string
	}{
		{"a malformed time", adminID, "/rules 5440 hours 20:00-25:00", `"25:00" is not a time of day. Give the hours as HH:MM-HH:MM in Asia/Shanghai time`},
		{"an empty word list", adminID, "/rules 5440 skip ,,", "Give the words to skip, separated by commas"},
		{"more than 20 words", adminID, "/rules 5440 skip " + strings.Join(words, ","), "That is 21 words to skip; a room takes at most 20"},
		{"a word of more than 50 characters", adminID, "/rules 5440 skip " + strings.Repeat("回", 51), "is 51 characters long; a word to skip has at most 50"},
		{"a room the chat does not follow", adminID, "/rules 6666 skip 回放", "This chat does not follow room 6666"},
		{"a member", memberID, "/rules 5440 off", "Only admins of this chat can change rules"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := ask(t, tg, tt.user, tt.text); !strings.Contains(r, tt.want) {
				t.Errorf("%s = %q, want %q", tt.text, r, tt.want)
			}
		})
	}
	if r := ask(t, tg, memberID, "/rules 5440"); !strings.Contains(r, set) {
		t.Errorf("rules after bad input = %q, want them unchanged", r)
	}
}

// Discord's /rules options arrive at the router as the words typed
// elsewhere: room first, hours and skip by name, off as the word.
func TestDiscordRulesOptions(t *testing.T) {
	sim := bilibilitest.Start(t, bilibilitest.Config{})
	sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, Anchor: "主播", Title: "今晚打游戏"})
	dc := discordtest.Start(t)
	out := runServe(t, map[string]string{
		"ROOMREC_DATA_DIR":  t.TempDir(),
		"BILIBILI_API_URL":  sim.URL(),
		"DISCORD_BOT_TOKEN": "discord-token",
		"DISCORD_GUILD_ID":  guild,
		"DISCORD_API_URL":   dc.URL(),
		"ROOMREC_HTTP_ADDR": "off",
	}).out
	select {
	case <-dc.Ready():
	case <-time.After(5 * time.Second):
		t.Fatalf("the bot never connected to the gateway\n%s", out)
	}
	waitFor(t, 5*time.Second, "command registration", func() bool { return len(callsMatching(dc, "PUT", "/applications/")) == 1 })
	if registered := jsonOf(callsMatching(dc, "PUT", "/applications/")[0].Body); !strings.Contains(registered, `"name":"rules"`) {
		t.Fatalf("/rules not registered: %s", registered)
	}
	answer := func(id string) string {
		t.Helper()
		var got string
		waitFor(t, 5*time.Second, "the answer to interaction "+id, func() bool {
			if c := callsMatching(dc, "PATCH", "/webhooks/"+discordtest.AppID+"/token-"+id+"/messages/@original"); len(c) > 0 {
				got = jsonOf(c[0].Body)
				return true
			}
			if c := callsMatching(dc, "POST", "/interactions/"+id+"/"); len(c) > 0 && !strings.Contains(jsonOf(c[0].Body), `"type":5`) {
				got = jsonOf(c[0].Body)
				return true
			}
			return false
		})
		return got
	}
	str := func(name, value string) map[string]any {
		return map[string]any{"name": name, "type": 3, "value": value}
	}
	dc.Dispatch(discordtest.Interaction{ID: "1", GuildID: guild, ChannelID: channel, UserID: "8", Permissions: 32, Name: "record",
		Options: []map[string]any{str("room", "5440")}})
	if r := answer("1"); !strings.Contains(r, "Recording 主播") {
		t.Fatalf("/record = %s", r)
	}
	tests := []struct {
		name    string
		admin   bool
		options []map[string]any
		want    string
	}{
		{"hours and skip, room last", true, []map[string]any{str("hours", "20:00-02:00"), str("skip", "回放,重播"), str("room", "5440")},
			"only broadcasts that start 20:00-02:00 (Asia/Shanghai time) count; a title with 回放, 重播 does not count"},
		{"read by a member", false, []map[string]any{str("room", "5440")}, "a title with 回放, 重播 does not count"},
		{"set by a member", false, []map[string]any{str("room", "5440"), {"name": "off", "type": 5, "value": true}}, "Only admins of this chat can change rules"},
		{"skip off", true, []map[string]any{str("room", "5440"), str("skip", "off")}, "only broadcasts that start 20:00-02:00 (Asia/Shanghai time) count."},
		{"a bad time", true, []map[string]any{str("room", "5440"), str("hours", "8-9")}, `\"8\" is not a time of day`},
		{"off", true, []map[string]any{str("room", "5440"), {"name": "off", "type": 5, "value": true}}, "every broadcast counts"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprint(10 + i)
			perms := int64(0)
			if tt.admin {
				perms = 32
			}
			dc.Dispatch(discordtest.Interaction{ID: id, GuildID: guild, ChannelID: channel, UserID: "8", Permissions: perms, Name: "rules", Options: tt.options})
			if r := answer(id); !strings.Contains(r, tt.want) {
				t.Errorf("/rules = %s, want %q", r, tt.want)
			}
		})
	}
}
