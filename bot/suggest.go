package bot

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"roomrec/storage"
)

// Choice is one autocomplete suggestion: what the user sees and what the
// command receives.
type Choice struct {
	Name  string
	Value string
}

// maxChoices is what platforms show at most (Discord's limit).
const maxChoices = 25

// SuggestRooms returns this chat's rooms matching what the user has typed,
// for completing a room argument.
func (r *Router) SuggestRooms(ctx context.Context, c Chat, typed string) ([]Choice, error) {
	chat, err := r.store.EnsureChat(ctx, storage.Chat{Platform: c.Platform, PlatformID: c.ID, Title: c.Title})
	if err != nil {
		return nil, err
	}
	subs, err := r.store.ChatSubscriptions(ctx, chat.ID)
	if err != nil {
		return nil, err
	}
	var out []Choice
	for _, s := range subs {
		name := shorten(roomName(s.Room), 100)
		if matches(typed, name, strconv.FormatInt(s.RoomID, 10)) && len(out) < maxChoices {
			out = append(out, Choice{Name: name, Value: strconv.FormatInt(s.RoomID, 10)})
		}
	}
	return out, nil
}

// SuggestRecordings returns this chat's newest recordings matching what the
// user has typed, for completing an archive id.
func (r *Router) SuggestRecordings(ctx context.Context, c Chat, typed string) ([]Choice, error) {
	chat, err := r.store.EnsureChat(ctx, storage.Chat{Platform: c.Platform, PlatformID: c.ID, Title: c.Title})
	if err != nil {
		return nil, err
	}
	page, err := r.store.Archive(ctx, chat.ID, storage.ArchiveQuery{Limit: 100})
	if err != nil {
		return nil, err
	}
	var out []Choice
	for _, rec := range page.Items {
		id := strconv.FormatInt(rec.ID, 10)
		name := shorten(fmt.Sprintf("#%s %s %s", id, rec.Started.Format("01-02 15:04"), rec.Title), 100)
		if matches(typed, name, id) && len(out) < maxChoices {
			out = append(out, Choice{Name: name, Value: id})
		}
	}
	return out, nil
}

func matches(typed, name, value string) bool {
	typed = strings.ToLower(strings.TrimSpace(typed))
	return typed == "" || strings.Contains(strings.ToLower(name), typed) || strings.HasPrefix(value, typed)
}
