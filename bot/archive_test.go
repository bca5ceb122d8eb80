package bot_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"roomrec/bot"
	"roomrec/storage"
)

// addOldRecordings files finished recordings of room 5440 of the given ages
// (in days) into the archive of every chat recording it, with 100-byte
// files on disk, and returns their paths by age.
func (w *world) addOldRecordings(t *testing.T, ages ...int) map[int]string {
	t.Helper()
	ctx := context.Background()
	paths := map[int]string{}
	for _, age := range ages {
		rel := fmt.Sprintf("5440/%dd.flv", age)
		abs := filepath.Join(w.dir, "recordings", rel)
		if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(abs, make([]byte, 100), 0o644); err != nil {
			t.Fatal(err)
		}
		started := time.Now().Add(-time.Duration(age) * 24 * time.Hour)
		if _, err := w.store.CreateRecording(ctx, storage.NewRecording{RoomID: 5440, Path: rel, Title: fmt.Sprintf("%d days ago", age), Started: started}); err != nil {
			t.Fatal(err)
		}
		if err := w.store.CompleteRecording(ctx, rel, storage.RecordingEnd{Size: 100, Duration: time.Minute, Ended: started.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		paths[age] = abs
	}
	return paths
}

func (w *world) chatRetention(t *testing.T) storage.Retention {
	t.Helper()
	chat, err := w.store.EnsureChat(context.Background(), storage.Chat{Platform: group.Platform, PlatformID: group.ID})
	if err != nil {
		t.Fatal(err)
	}
	r, err := w.store.ChatRetention(context.Background(), chat.ID)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestArchiveKeep(t *testing.T) {
	w := newWorld(t)
	w.ask(t, admin("/record 5440"))
	paths := w.addOldRecordings(t, 40, 20, 1)

	if r := w.ask(t, member("/archive keep")); r.Private || !strings.Contains(r.Text, "no limit of its own") || !strings.Contains(r.Text, "stay until someone deletes them") {
		t.Errorf("/archive keep with no policy = %+v", r)
	}
	if r := w.ask(t, member("/archive keep 30d")); !r.Private || !strings.Contains(r.Text, "Only admins") {
		t.Errorf("/archive keep 30d by a member = %+v, want a private refusal", r)
	}
	for _, tt := range []struct{ text, want string }{
		{"/archive keep 30", "needs a unit"},
		{"/archive keep 0d", "not a number of days"},
		{"/archive keep -3d", "not a number of days"},
		{"/archive keep 5000d", "between 1 and 3650 days"},
		{"/archive keep 99999999999999999999d", "not a number of days"},
		{"/archive keep 30d 40d", "between 1 and 3650 days, once"},
		{"/archive keep 2000000GiB", "between 1 and 1048576 GiB"},
		{"/archive keep 1d 2GiB 3", "Usage: /archive keep"},
		{"/archive keep forever", "not a number"},
	} {
		if r := w.ask(t, admin(tt.text)); !r.Private || !strings.Contains(r.Text, tt.want) {
			t.Errorf("%s = %+v, want a private reply containing %q", tt.text, r, tt.want)
		}
	}
	if got := w.chatRetention(t); !got.IsZero() {
		t.Fatalf("refused and bad commands set the policy to %+v", got)
	}

	// Tightening prunes at once and says so.
	r := w.ask(t, admin("/archive keep 30d"))
	if r.Private || !strings.Contains(r.Text, "now keeps recordings for 30 days") || !strings.Contains(r.Text, "Removed 1 recording(s)") {
		t.Errorf("/archive keep 30d = %+v, want the new policy and one removal", r)
	}
	if _, err := os.Stat(paths[40]); !os.IsNotExist(err) {
		t.Error("the 40-day-old file is still on disk")
	}
	if a := w.ask(t, member("/archive")); !strings.Contains(a.Text, "2 recordings") || strings.Contains(a.Text, "40 days ago") {
		t.Errorf("/archive after keep 30d = %q, want the 20- and 1-day-old ones", a.Text)
	}
	if got := w.chatRetention(t); got.MaxAge != 30*24*time.Hour || got.MaxBytes != 0 {
		t.Errorf("stored policy = %+v, want 30 days", got)
	}

	// The server's limit is a ceiling the chat cannot lift.
	w.useRouter(bot.RouterOptions{Retention: storage.Retention{MaxAge: 10 * 24 * time.Hour}})
	if r := w.ask(t, member("/archive keep")); !strings.Contains(r.Text, "keeps recordings for 30 days") || !strings.Contains(r.Text, "This server keeps them for 10 days at most") {
		t.Errorf("/archive keep under a server limit = %q", r.Text)
	}
	if r := w.ask(t, admin("/archive keep 15d 1GiB")); !strings.Contains(r.Text, "The server's limit still applies: for 10 days and up to 1.0 GiB") || !strings.Contains(r.Text, "Removed 1 recording(s)") {
		t.Errorf("/archive keep 15d 1GiB = %q, want the server's tighter age and the 20-day-old one removed", r.Text)
	}
	if _, err := os.Stat(paths[1]); err != nil {
		t.Errorf("the newest file is gone: %v", err)
	}

	w.useRouter(bot.RouterOptions{})
	if r := w.ask(t, admin("/archive keep OFF")); r.Private || !strings.Contains(r.Text, "no longer limits") {
		t.Errorf("/archive keep off = %+v", r)
	}
	if got := w.chatRetention(t); !got.IsZero() {
		t.Errorf("policy after off = %+v", got)
	}
}

func TestArchivePages(t *testing.T) {
	w := newWorld(t)
	w.ask(t, admin("/record 5440"))
	var ages []int
	for age := 1; age <= 23; age++ {
		ages = append(ages, age)
	}
	w.addOldRecordings(t, ages...)

	first := w.ask(t, member("/archive")).Text
	if !strings.Contains(first, "23 recordings") || !strings.Contains(first, "1 days ago") || strings.Contains(first, "11 days ago") ||
		!strings.Contains(first, "Page 1 of 3; older: /archive page 2") {
		t.Errorf("/archive = %q, want the newest 10 and the way to older ones", first)
	}
	last := w.ask(t, member("/archive page 3")).Text
	if !strings.Contains(last, "21 days ago") || !strings.Contains(last, "23 days ago") || strings.Contains(last, "20 days ago") ||
		!strings.Contains(last, "Page 3 of 3") || strings.Contains(last, "older:") {
		t.Errorf("/archive page 3 = %q, want the oldest 3", last)
	}
	if r := w.ask(t, member("/archive 5440 page 2")).Text; !strings.Contains(r, "11 days ago") || !strings.Contains(r, "Page 2 of 3; older: /archive 5440 page 3") {
		t.Errorf("/archive 5440 page 2 = %q", r)
	}
	for _, tt := range []struct{ text, want string }{
		{"/archive page 4", "there is no page 4"},
		{"/archive page 0", "not a page number"},
		{"/archive page two", "not a page number"},
		{"/archive 5440 6 page 2", "Usage: /archive [room] [page N]"},
	} {
		if r := w.ask(t, member(tt.text)); !r.Private || !strings.Contains(r.Text, tt.want) {
			t.Errorf("%s = %+v, want a private reply containing %q", tt.text, r, tt.want)
		}
	}
	if r := w.ask(t, member("/archive 9999")).Text; !strings.Contains(r, "No recordings of room 9999") {
		t.Errorf("/archive of a room never recorded = %q", r)
	}
}

// With no public URL, links point at the server itself: the console (on
// that machine) gets one, a group is told why there is none.
func TestArchiveLinkWithoutPublicURL(t *testing.T) {
	w := newWorld(t)
	w.useRouter(bot.RouterOptions{LinksLocal: true})
	if r := w.ask(t, member("/archive link 1")); !r.Private || !strings.Contains(r.Text, "ROOMREC_PUBLIC_URL") {
		t.Errorf("/archive link in a group without a public URL = %+v", r)
	}
	console := bot.Request{Chat: bot.Chat{Platform: storage.Console, ID: "console", Private: true}, Text: "/archive link 1"}
	if r := w.ask(t, console); strings.Contains(r.Text, "ROOMREC_PUBLIC_URL") {
		t.Errorf("/archive link in the console = %q, want the local link path, not a refusal", r.Text)
	}
}
