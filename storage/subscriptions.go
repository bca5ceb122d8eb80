package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// Mode is how a chat follows a room.
type Mode string

// Subscription modes.
const (
	Record Mode = "record" // alert and record
	Watch  Mode = "watch"  // alert only
)

// Room is what roomrec remembers of a Bilibili room.
type Room struct {
	RoomID     int64 // the real id
	ShortID    int64
	UID        int64 // the anchor's; 0 when not known
	Anchor     string
	Title      string
	Cover      string
	Area       string // the area and its parent, as webhooks name them; both kept when both are empty
	ParentArea string
}

// Subscription is a chat's interest in a room.
type Subscription struct {
	Room
	Mode    Mode
	AddedBy string
	Added   time.Time
	Rules   Rules
}

// Subscriber is a chat subscribed to a room.
type Subscriber struct {
	Chat
	Mode  Mode
	Rules Rules
}

// Rules say which broadcasts of a room count for a chat (/rules). The zero
// value has none: every broadcast counts. What they mean is the bot's to
// decide; the store keeps them.
type Rules struct {
	// HoursFrom and HoursTo are a window of the day in minutes after
	// midnight, from inclusive, to exclusive; to before from crosses
	// midnight. Equal, there is no window (an empty one is refused).
	HoursFrom, HoursTo int
	// Skip are words a title must not contain; nil for none.
	Skip []string
}

// HasHours reports whether the rules limit the hours.
func (r Rules) HasHours() bool { return r.HoursFrom != r.HoursTo }

// IsZero reports whether there are no rules at all.
func (r Rules) IsZero() bool { return !r.HasHours() && len(r.Skip) == 0 }

// RoomWant is a room some chat subscribes to, and whether any records it.
type RoomWant struct {
	Room   // as last known, so a task can start without asking Bilibili
	Record bool
}

// Subscribe subscribes a chat to a room with a mode (Record or Watch),
// remembering the room. Subscribing again changes the mode; created says
// whether the subscription is new.
func (s *Store) Subscribe(ctx context.Context, chatID int64, room Room, mode Mode, addedBy string) (created bool, err error) {
	if mode != Record && mode != Watch {
		return false, fmt.Errorf("subscribe: mode %q is not record or watch", mode)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		now := s.now()
		if err := upsertRoom(ctx, tx, room, now); err != nil {
			return err
		}
		var existed int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM subscriptions WHERE chat_id = ? AND room_id = ?`, chatID, room.RoomID).Scan(&existed); err != nil {
			return err
		}
		created = existed == 0
		_, err := tx.ExecContext(ctx, `
			INSERT INTO subscriptions (chat_id, room_id, mode, added_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (chat_id, room_id) DO UPDATE SET mode = excluded.mode, updated_at = excluded.updated_at`,
			chatID, room.RoomID, mode, addedBy, now, now)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("subscribe chat %d to room %d: %w", chatID, room.RoomID, err)
	}
	return created, nil
}

// Unsubscribe removes a chat's subscription to a room and returns what it
// was. It returns an error wrapping ErrNotFound if there was none.
func (s *Store) Unsubscribe(ctx context.Context, chatID, roomID int64) (Subscription, error) {
	var sub Subscription
	err := s.write(ctx, func(tx *sql.Tx) error {
		subs, err := querySubscriptions(ctx, tx, `WHERE s.chat_id = ? AND s.room_id = ?`, chatID, roomID)
		if err != nil {
			return err
		}
		if len(subs) == 0 {
			return notFound("This chat does not follow room %d.", roomID)
		}
		sub = subs[0]
		_, err = tx.ExecContext(ctx, `DELETE FROM subscriptions WHERE chat_id = ? AND room_id = ?`, chatID, roomID)
		return err
	})
	return sub, err
}

// SetRules replaces a chat's rules for a room it follows; zero Rules clear
// them. It returns an error wrapping ErrNotFound if the chat does not
// follow the room.
func (s *Store) SetRules(ctx context.Context, chatID, roomID int64, r Rules) error {
	from, to := sql.NullInt64{}, sql.NullInt64{}
	if r.HasHours() {
		if r.HoursFrom < 0 || r.HoursFrom >= 24*60 || r.HoursTo < 0 || r.HoursTo >= 24*60 {
			return fmt.Errorf("set rules of chat %d for room %d: hours %d-%d are not minutes of a day", chatID, roomID, r.HoursFrom, r.HoursTo)
		}
		from, to = sql.NullInt64{Int64: int64(r.HoursFrom), Valid: true}, sql.NullInt64{Int64: int64(r.HoursTo), Valid: true}
	}
	skip, err := json.Marshal(append([]string{}, r.Skip...))
	if err != nil {
		return fmt.Errorf("set rules of chat %d for room %d: %w", chatID, roomID, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
			UPDATE subscriptions SET hours_from = ?, hours_to = ?, skip = ?, updated_at = ?
			WHERE chat_id = ? AND room_id = ?`, from, to, string(skip), s.now(), chatID, roomID)
		return changedOne(res, err, "This chat does not follow room %d.", roomID)
	})
	if err != nil {
		return fmt.Errorf("set rules of chat %d for room %d: %w", chatID, roomID, err)
	}
	return nil
}

// scanRules reads the rule columns of a subscription.
func scanRules(from, to sql.NullInt64, skip string) (Rules, error) {
	var r Rules
	if from.Valid && to.Valid {
		r.HoursFrom, r.HoursTo = int(from.Int64), int(to.Int64)
	}
	if err := json.Unmarshal([]byte(skip), &r.Skip); err != nil {
		return Rules{}, fmt.Errorf("skip words %q: %w", skip, err)
	}
	if len(r.Skip) == 0 {
		r.Skip = nil
	}
	return r, nil
}

// ChatSubscriptions returns a chat's subscriptions, by room id.
func (s *Store) ChatSubscriptions(ctx context.Context, chatID int64) ([]Subscription, error) {
	return querySubscriptions(ctx, s.db, `WHERE s.chat_id = ? ORDER BY s.room_id`, chatID)
}

// RoomSubscribers returns the chats subscribed to a room.
func (s *Store) RoomSubscribers(ctx context.Context, roomID int64) ([]Subscriber, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT c.id, c.platform, c.platform_id, c.title, s.mode, s.hours_from, s.hours_to, s.skip
		FROM subscriptions s JOIN chats c ON c.id = s.chat_id
		WHERE s.room_id = ? ORDER BY c.id`, roomID)
	if err != nil {
		return nil, fmt.Errorf("subscribers of room %d: %w", roomID, err)
	}
	defer rows.Close()
	var out []Subscriber
	for rows.Next() {
		var sub Subscriber
		var from, to sql.NullInt64
		var skip string
		if err := rows.Scan(&sub.ID, &sub.Platform, &sub.PlatformID, &sub.Title, &sub.Mode, &from, &to, &skip); err != nil {
			return nil, err
		}
		if sub.Rules, err = scanRules(from, to, skip); err != nil {
			return nil, fmt.Errorf("subscribers of room %d: %w", roomID, err)
		}
		out = append(out, sub)
	}
	return out, rows.Err()
}

// SubscribedRooms returns every room at least one chat subscribes to, and
// whether any of them records it: what to resume at start.
func (s *Store) SubscribedRooms(ctx context.Context) ([]RoomWant, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT s.room_id, max(s.mode = 'record'), r.short_id, r.uid, r.anchor, r.title, r.cover
		FROM subscriptions s JOIN rooms r ON r.room_id = s.room_id
		GROUP BY s.room_id ORDER BY s.room_id`)
	if err != nil {
		return nil, fmt.Errorf("subscribed rooms: %w", err)
	}
	defer rows.Close()
	var out []RoomWant
	for rows.Next() {
		var w RoomWant
		if err := rows.Scan(&w.RoomID, &w.Record, &w.ShortID, &w.UID, &w.Anchor, &w.Title, &w.Cover); err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// UpdateRoom records what is now known of a room: its anchor (and uid),
// title and cover. Empty fields keep what was known.
func (s *Store) UpdateRoom(ctx context.Context, room Room) error {
	return s.write(ctx, func(tx *sql.Tx) error { return upsertRoom(ctx, tx, room, s.now()) })
}

func upsertRoom(ctx context.Context, tx *sql.Tx, r Room, now int64) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO rooms (room_id, short_id, uid, anchor, title, cover, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (room_id) DO UPDATE SET
			short_id = CASE WHEN excluded.short_id != 0 THEN excluded.short_id ELSE short_id END,
			uid = CASE WHEN excluded.uid != 0 THEN excluded.uid ELSE uid END,
			anchor = CASE WHEN excluded.anchor != '' THEN excluded.anchor ELSE anchor END,
			title = CASE WHEN excluded.title != '' THEN excluded.title ELSE title END,
			cover = CASE WHEN excluded.cover != '' THEN excluded.cover ELSE cover END,
			updated_at = excluded.updated_at`,
		r.RoomID, r.ShortID, r.UID, r.Anchor, r.Title, r.Cover, now)
	if err == nil && (r.Area != "" || r.ParentArea != "") {
		_, err = tx.ExecContext(ctx, `UPDATE rooms SET area = ?, parent_area = ? WHERE room_id = ?`, r.Area, r.ParentArea, r.RoomID)
	}
	if err != nil {
		return fmt.Errorf("remember room %d: %w", r.RoomID, err)
	}
	return nil
}

// querier is what both *sql.DB and *sql.Tx offer for reads.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func querySubscriptions(ctx context.Context, q querier, where string, args ...any) ([]Subscription, error) {
	rows, err := q.QueryContext(ctx, `
		SELECT r.room_id, r.short_id, r.uid, r.anchor, r.title, r.cover, s.mode, s.added_by, s.created_at, s.hours_from, s.hours_to, s.skip
		FROM subscriptions s JOIN rooms r ON r.room_id = s.room_id `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("subscriptions: %w", err)
	}
	defer rows.Close()
	var out []Subscription
	for rows.Next() {
		var sub Subscription
		var added int64
		var from, to sql.NullInt64
		var skip string
		if err := rows.Scan(&sub.RoomID, &sub.ShortID, &sub.UID, &sub.Anchor, &sub.Title, &sub.Cover, &sub.Mode, &sub.AddedBy, &added, &from, &to, &skip); err != nil {
			return nil, err
		}
		if sub.Rules, err = scanRules(from, to, skip); err != nil {
			return nil, fmt.Errorf("subscriptions: %w", err)
		}
		sub.Added = time.UnixMilli(added)
		out = append(out, sub)
	}
	return out, rows.Err()
}
