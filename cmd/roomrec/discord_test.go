package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"roomrec/bilibili/bilibilitest"
	"roomrec/bot/discord/discordtest"
	"roomrec/bot/telegram/telegramtest"
)

const (
	guild   = "900"
	channel = "901"
)

// callsMatching returns the fake Discord's calls with a method and a path
// prefix.
func callsMatching(dc *discordtest.Server, method, prefix string) []discordtest.Call {
	var out []discordtest.Call
	for _, c := range dc.Calls() {
		if c.Method == method && strings.HasPrefix(c.Path, prefix) {
			out = append(out, c)
		}
	}
	return out
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestServeDiscordAndTelegramShareOneRecording(t *testing.T) {
	sim := bilibilitest.Start(t, bilibilitest.Config{Speed: 4})
	room := sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, ShortID: 1, Anchor: "主播", Title: "@everyone 今晚打游戏"})
	tg := telegramtest.Start(t, testToken)
	tg.SetAdmin(groupID, adminID)
	dc := discordtest.Start(t)
	dir := t.TempDir()
	s := runServe(t, map[string]string{
		"ROOMREC_DATA_DIR":      dir,
		"BILIBILI_API_URL":      sim.URL(),
		"TELEGRAM_BOT_TOKEN":    testToken,
		"TELEGRAM_API_ENDPOINT": tg.Endpoint(),
		"DISCORD_BOT_TOKEN":     "discord-token",
		"DISCORD_GUILD_ID":      guild,
		"DISCORD_API_URL":       dc.URL(),
	}, publicLinks)
	out := s.out
	select {
	case <-dc.Ready():
	case <-time.After(5 * time.Second):
		t.Fatalf("the bot never connected to the gateway\n%s", out)
	}
	waitFor(t, 5*time.Second, "command registration", func() bool {
		return len(callsMatching(dc, "PUT", "/applications/"+discordtest.AppID+"/guilds/"+guild+"/commands")) == 1
	})
	registered := jsonOf(callsMatching(dc, "PUT", "/applications/")[0].Body)
	for _, want := range []string{`"name":"record"`, `"name":"archive"`, `"default_member_permissions":"32"`, `"autocomplete":true`} {
		if !strings.Contains(registered, want) {
			t.Errorf("registered commands lack %s", want)
		}
	}

	// answer returns the first callback for an interaction id, once there is one.
	answer := func(id string) string {
		t.Helper()
		var got string
		waitFor(t, 5*time.Second, "the answer to interaction "+id, func() bool {
			c := callsMatching(dc, "POST", "/interactions/"+id+"/")
			if len(c) > 0 {
				got = jsonOf(c[0].Body)
			}
			return len(c) > 0
		})
		return got
	}
	// Without Manage Server: refused, only the caller sees it.
	dc.Dispatch(discordtest.Interaction{ID: "1", GuildID: guild, ChannelID: channel, UserID: "7", Permissions: 0, Name: "record",
		Options: []map[string]any{{"name": "room", "type": 3, "value": "5440"}}})
	refusal := answer("1")
	if !strings.Contains(refusal, "Only admins") || !strings.Contains(refusal, `"flags":64`) {
		t.Errorf("refusal = %s, want an ephemeral 'Only admins'", refusal)
	}
	// With it: deferred at once, then the reply edited in.
	dc.Dispatch(discordtest.Interaction{ID: "2", GuildID: guild, ChannelID: channel, UserID: "8", Permissions: 32, Name: "record",
		Options: []map[string]any{{"name": "room", "type": 3, "value": "https://live.bilibili.com/1"}}})
	waitFor(t, 5*time.Second, "the edited reply", func() bool {
		return len(callsMatching(dc, "PATCH", "/webhooks/"+discordtest.AppID+"/token-2/messages/@original")) == 1
	})
	if deferred := answer("2"); !strings.Contains(deferred, `"type":5`) {
		t.Errorf("first answer = %s, want a deferral", deferred)
	}
	edited := jsonOf(callsMatching(dc, "PATCH", "/webhooks/")[0].Body)
	if !strings.Contains(edited, "Recording 主播") {
		t.Errorf("edited reply = %s", edited)
	}
	// An error after the deferral replaces the public placeholder with a
	// message only the caller sees.
	dc.Dispatch(discordtest.Interaction{ID: "6", GuildID: guild, ChannelID: channel, UserID: "8", Permissions: 32, Name: "watch",
		Options: []map[string]any{{"name": "room", "type": 3, "value": "4242"}}})
	waitFor(t, 5*time.Second, "the private follow-up", func() bool {
		return len(callsMatching(dc, "POST", "/webhooks/"+discordtest.AppID+"/token-6")) == 1
	})
	if n := len(callsMatching(dc, "DELETE", "/webhooks/"+discordtest.AppID+"/token-6/messages/@original")); n != 1 {
		t.Errorf("placeholder deleted %d times, want 1", n)
	}
	if f := jsonOf(callsMatching(dc, "POST", "/webhooks/"+discordtest.AppID+"/token-6")[0].Body); !strings.Contains(f, "no room 4242") || !strings.Contains(f, `"flags":64`) {
		t.Errorf("follow-up = %s, want an ephemeral 'no room 4242'", f)
	}
	// The same room from a Telegram group.
	if r := ask(t, tg, adminID, "/record 5440"); !strings.Contains(r, "Recording 主播") {
		t.Fatalf("telegram /record = %q", r)
	}
	// Autocomplete offers the channel's rooms.
	dc.Dispatch(discordtest.Interaction{ID: "3", Autocomplete: true, GuildID: guild, ChannelID: channel, UserID: "8", Permissions: 32, Name: "stop",
		Options: []map[string]any{{"name": "room", "type": 3, "value": "54", "focused": true}}})
	if ac := answer("3"); !strings.Contains(ac, `"type":8`) || !strings.Contains(ac, `"value":"5440"`) {
		t.Errorf("autocomplete = %s", ac)
	}

	waitFor(t, 5*time.Second, "danmaku connection", func() bool { return sim.DanmakuConnections(5440) == 1 })
	room.GoLive()
	alertsPosted := func() []discordtest.Call { return callsMatching(dc, "POST", "/channels/"+channel+"/messages") }
	waitFor(t, 5*time.Second, "the Discord alert", func() bool { return len(alertsPosted()) == 1 })
	waitFor(t, 5*time.Second, "the Telegram alert", func() bool { return len(alerts(tg)) == 1 })
	time.Sleep(time.Second)
	if n := len(alertsPosted()); n != 1 {
		t.Errorf("%d Discord alerts, want exactly 1", n)
	}
	alert := jsonOf(alertsPosted()[0].Body)
	if !strings.Contains(alert, `"embeds"`) || !strings.Contains(alert, "https://live.bilibili.com/5440") || !strings.Contains(alert, `"allowed_mentions":{"parse":[]`) {
		t.Errorf("alert = %s, want an embed with the link and no mentions allowed", alert)
	}
	if n := sim.Room(5440).OpenStreams(); n != 1 {
		t.Errorf("%d stream connections for two chats, want one shared download", n)
	}
	room.EndLive()
	waitFor(t, 10*time.Second, "the embed edited", func() bool {
		for _, c := range callsMatching(dc, "PATCH", "/channels/"+channel+"/messages/") {
			if strings.Contains(jsonOf(c.Body), "Ended after") {
				return true
			}
		}
		return false
	})
	// Both chats see the one file.
	if r := ask(t, tg, memberID, "/archive"); !strings.Contains(r, "1 recordings") {
		t.Errorf("telegram /archive = %q", r)
	}
	dc.Dispatch(discordtest.Interaction{ID: "4", GuildID: guild, ChannelID: channel, UserID: "7", Name: "archive",
		Options: []map[string]any{{"name": "list", "type": 1, "options": []map[string]any{}}}})
	if r := answer("4"); !strings.Contains(r, "1 recordings") {
		t.Errorf("discord /archive = %s", r)
	}
	// /archive keep: a member is refused; Manage Server sets the channel's
	// limit from the days and gib options.
	keep := []map[string]any{{"name": "keep", "type": 1, "options": []map[string]any{
		{"name": "days", "type": 4, "value": 30}, {"name": "gib", "type": 4, "value": 50}}}}
	dc.Dispatch(discordtest.Interaction{ID: "7", GuildID: guild, ChannelID: channel, UserID: "7", Name: "archive", Options: keep})
	if r := answer("7"); !strings.Contains(r, "Only admins") || !strings.Contains(r, `"flags":64`) {
		t.Errorf("/archive keep by a member = %s, want an ephemeral refusal", r)
	}
	dc.Dispatch(discordtest.Interaction{ID: "8", GuildID: guild, ChannelID: channel, UserID: "8", Permissions: 32, Name: "archive", Options: keep})
	if r := answer("8"); !strings.Contains(r, "now keeps recordings for 30 days and up to 50.0 GiB") {
		t.Errorf("/archive keep days:30 gib:50 = %s", r)
	}
	// In a DM the user is the admin of that DM.
	dc.Dispatch(discordtest.Interaction{ID: "5", ChannelID: "dm-1", UserID: "7", Name: "watch",
		Options: []map[string]any{{"name": "room", "type": 3, "value": "5440"}}})
	waitFor(t, 5*time.Second, "the DM reply", func() bool {
		return len(callsMatching(dc, "PATCH", "/webhooks/"+discordtest.AppID+"/token-5/messages/@original")) == 1
	})
	if r := jsonOf(callsMatching(dc, "PATCH", "/webhooks/"+discordtest.AppID+"/token-5/")[0].Body); !strings.Contains(r, "Watching 主播") {
		t.Errorf("DM /watch = %s", r)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "recordings", "5440", "*.flv"))
	if len(files) != 1 {
		t.Errorf("%d files on disk, want 1 shared by both chats", len(files))
	}
	link := ask(t, tg, memberID, "/archive link 1")
	base := link[strings.Index(link, "http://"):strings.Index(link, "/dl/")]
	if health := httpGet(t, base+"/healthz"); !strings.Contains(health, `"bots":{"discord":true,"telegram":true}`) {
		t.Errorf("/healthz = %s, want both bots connected", health)
	}
}
