package bot_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"roomrec/bot"
	"roomrec/recording"
	"roomrec/storage"
)

// The gate admits a broadcast when a chat that records the room counts it;
// chats that only watch have no say, and a room no chat records (as far
// as the database knows) is admitted, since rules only take away.
func TestGateAdmits(t *testing.T) {
	ctx := context.Background()
	store, err := storage.Open(ctx, filepath.Join(t.TempDir(), "roomrec.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	chat := func(id string, mode storage.Mode, rules storage.Rules) {
		c, err := store.EnsureChat(ctx, storage.Chat{Platform: storage.Telegram, PlatformID: id})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Subscribe(ctx, c.ID, storage.Room{RoomID: 5440}, mode, ""); err != nil {
			t.Fatal(err)
		}
		if err := store.SetRules(ctx, c.ID, 5440, rules); err != nil {
			t.Fatal(err)
		}
	}
	shanghai := bot.Shanghai()
	evening := time.Date(2026, 3, 1, 21, 0, 0, 0, shanghai)
	noon := time.Date(2026, 3, 1, 12, 0, 0, 0, shanghai)
	gate := bot.NewGate(store, shanghai, nil)
	admit := func(start time.Time, title string) bool {
		return gate.Admit(recording.Room{RoomID: 5440}, recording.BroadcastInfo{Start: start, Title: title})
	}
	if !admit(noon, "回放") {
		t.Error("a room no chat records was turned down")
	}
	chat("watcher", storage.Watch, storage.Rules{})
	chat("replays-no", storage.Record, storage.Rules{Skip: []string{"回放"}})
	chat("evenings", storage.Record, storage.Rules{HoursFrom: 20 * 60, HoursTo: 23 * 60})
	tests := []struct {
		name  string
		start time.Time
		title string
		want  bool
	}{
		{"counts for both", evening, "打游戏", true},
		{"a replay in the evening counts for one", evening, "回放", true},
		{"not a replay at noon counts for one", noon, "打游戏", true},
		{"a replay at noon counts for none (the watcher has no say)", noon, "回放", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := admit(tt.start, tt.title); got != tt.want {
				t.Errorf("Admit(%s, %q) = %v, want %v", tt.start.Format("15:04"), tt.title, got, tt.want)
			}
		})
	}
	// A database that cannot answer loses no broadcast.
	store.Close()
	if !admit(noon, "回放") {
		t.Error("turned a broadcast down without reading the rules")
	}
}
