package storage

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestRules(t *testing.T) {
	s, dir := openTest(t)
	ctx := context.Background()
	chat, _ := s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "-100"})
	if _, err := s.Subscribe(ctx, chat.ID, Room{RoomID: 5440}, Record, "alice"); err != nil {
		t.Fatal(err)
	}
	rulesOf := func(s *Store) (Rules, Rules) {
		t.Helper()
		subs, err := s.ChatSubscriptions(ctx, chat.ID)
		if err != nil || len(subs) != 1 {
			t.Fatalf("ChatSubscriptions = %+v, %v", subs, err)
		}
		subscribers, err := s.RoomSubscribers(ctx, 5440)
		if err != nil || len(subscribers) != 1 {
			t.Fatalf("RoomSubscribers = %+v, %v", subscribers, err)
		}
		return subs[0].Rules, subscribers[0].Rules
	}
	if a, b := rulesOf(s); !a.IsZero() || !b.IsZero() {
		t.Errorf("rules of a new subscription = %+v, %+v, want none", a, b)
	}

	night := Rules{HoursFrom: 20 * 60, HoursTo: 2 * 60, Skip: []string{"回放", "重播"}}
	if err := s.SetRules(ctx, chat.ID, 5440, night); err != nil {
		t.Fatal(err)
	}
	// Changing the mode keeps them.
	if _, err := s.Subscribe(ctx, chat.ID, Room{RoomID: 5440}, Watch, "bob"); err != nil {
		t.Fatal(err)
	}
	// And so does a restart.
	s.Close()
	s, err := Open(ctx, filepath.Join(dir, "roomrec.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if a, b := rulesOf(s); !reflect.DeepEqual(a, night) || !reflect.DeepEqual(b, night) {
		t.Errorf("rules after a mode change and a reopen = %+v, %+v, want %+v", a, b, night)
	}

	skipOnly := Rules{Skip: []string{"回放"}}
	if err := s.SetRules(ctx, chat.ID, 5440, skipOnly); err != nil {
		t.Fatal(err)
	}
	if a, _ := rulesOf(s); !reflect.DeepEqual(a, skipOnly) || a.HasHours() {
		t.Errorf("rules = %+v, want the skip words alone", a)
	}
	if err := s.SetRules(ctx, chat.ID, 5440, Rules{}); err != nil {
		t.Fatal(err)
	}
	if a, _ := rulesOf(s); !a.IsZero() {
		t.Errorf("rules after clearing = %+v", a)
	}

	if err := s.SetRules(ctx, chat.ID, 6666, night); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetRules for a room not followed = %v, want ErrNotFound", err)
	}
	if err := s.SetRules(ctx, chat.ID, 5440, Rules{HoursFrom: 0, HoursTo: 24 * 60}); err == nil {
		t.Error("SetRules took a window ending after the day")
	}

	// /stop forgets them: a new /record starts with none.
	s.SetRules(ctx, chat.ID, 5440, night)
	s.Unsubscribe(ctx, chat.ID, 5440)
	s.Subscribe(ctx, chat.ID, Room{RoomID: 5440}, Record, "")
	if a, _ := rulesOf(s); !a.IsZero() {
		t.Errorf("rules after /stop and /record = %+v, want none", a)
	}
}

func TestMigrateChatKeepsRules(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	group, _ := s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "-123"})
	s.Subscribe(ctx, group.ID, Room{RoomID: 5440}, Record, "")
	rules := Rules{HoursFrom: 60, HoursTo: 120, Skip: []string{"回放"}}
	s.SetRules(ctx, group.ID, 5440, rules)
	super, _ := s.EnsureChat(ctx, Chat{Platform: Telegram, PlatformID: "-100123"})
	s.Subscribe(ctx, super.ID, Room{RoomID: 1}, Watch, "")
	if err := s.MigrateChat(ctx, Telegram, "-123", "-100123"); err != nil {
		t.Fatal(err)
	}
	subs, _ := s.ChatSubscriptions(ctx, super.ID)
	if len(subs) != 2 || subs[1].RoomID != 5440 || !reflect.DeepEqual(subs[1].Rules, rules) {
		t.Errorf("merged subscriptions = %+v, want room 5440 with its rules", subs)
	}
}

// A file joins the archives of the chats named, of those that record the
// room; none named, of none; not named at all, of every recording chat.
func TestCreateRecordingForSomeChats(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	var chats []Chat
	for _, id := range []string{"a", "b", "c"} {
		c, _ := s.EnsureChat(ctx, Chat{Platform: Discord, PlatformID: id})
		chats = append(chats, c)
	}
	s.Subscribe(ctx, chats[0].ID, Room{RoomID: 5440}, Record, "")
	s.Subscribe(ctx, chats[1].ID, Room{RoomID: 5440}, Record, "")
	s.Subscribe(ctx, chats[2].ID, Room{RoomID: 5440}, Watch, "")
	start := time.Now()
	tests := []struct {
		name  string
		chats []int64
		want  []bool // in each chat's archive
	}{
		{"every recording chat", nil, []bool{true, true, false}},
		{"one of them", []int64{chats[1].ID}, []bool{false, true, false}},
		{"a watching chat is left out", []int64{chats[0].ID, chats[2].ID}, []bool{true, false, false}},
		{"none", []int64{}, []bool{false, false, false}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := s.CreateRecording(ctx, NewRecording{RoomID: 5440, LiveStart: start, Path: filepath.Join("5440", string(rune('a'+i))+".flv"), Started: start, Chats: tt.chats})
			if err != nil {
				t.Fatal(err)
			}
			for j, c := range chats {
				_, err := s.ArchiveItem(ctx, c.ID, rec.ID)
				if got := err == nil; got != tt.want[j] {
					t.Errorf("in chat %s's archive: %v, want %v (%v)", c.PlatformID, got, tt.want[j], err)
				}
			}
		})
	}
}
