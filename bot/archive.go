package bot

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"roomrec"
	"roomrec/storage"
)

// archive answers /archive list, link and delete. The archive is the
// chat's: every id is checked against it, so another chat's recording is as
// unknown as one that never existed.
func (r *Router) archive(ctx context.Context, req Request, c call) (string, error) {
	chat, err := r.chat(ctx, req)
	if err != nil {
		return "", err
	}
	switch c.name {
	case "archive delete":
		return r.archiveDelete(ctx, chat, c.id)
	case "archive link":
		if r.opts.LinksLocal && req.Chat.Platform != storage.Console {
			return "", roomrec.Errorf(roomrec.EUNAVAILABLE, "Download links are off: the server has no public address. Whoever runs roomrec can set ROOMREC_PUBLIC_URL to turn them on.")
		}
		return r.archiveLink(ctx, chat, c.id)
	case "archive keep":
		if c.keep == nil {
			return r.describeKeep(ctx, chat)
		}
		return r.setKeep(ctx, chat, *c.keep)
	}
	room := c.room
	if room != 0 {
		if followed, ok, err := r.followed(ctx, chat.ID, room); err == nil && ok {
			room = followed.RoomID
		}
	}
	return r.archiveList(ctx, chat, room, c.page)
}

// archivePageSize is how many recordings one /archive reply lists.
const archivePageSize = 10

// archiveList shows a page of the chat's recordings, newest first, of one
// room when roomID is not zero, with the totals.
func (r *Router) archiveList(ctx context.Context, chat storage.Chat, roomID int64, n int) (string, error) {
	page, err := r.store.Archive(ctx, chat.ID, storage.ArchiveQuery{Limit: archivePageSize, Offset: (n - 1) * archivePageSize, RoomID: roomID})
	if err != nil {
		return "", err
	}
	if page.Total == 0 {
		if roomID != 0 {
			return fmt.Sprintf("No recordings of room %d in this chat's archive.", roomID), nil
		}
		return "No recordings in this chat's archive yet.", nil
	}
	pages := (page.Total + archivePageSize - 1) / archivePageSize
	if len(page.Items) == 0 {
		return "", userErr("The archive has %d page(s); there is no page %d.", pages, n)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d recordings, %s, %s:\n", page.Total, formatBytes(page.TotalBytes), formatDuration(page.TotalDuration))
	for _, rec := range page.Items {
		status := ""
		if rec.Status != storage.Complete {
			status = " [" + rec.Status + "]"
		}
		fmt.Fprintf(&b, "#%d %s %s — %s, %s%s\n", rec.ID, rec.Started.Format("2006-01-02 15:04"), rec.Title,
			formatDuration(rec.Duration), formatBytes(rec.Size), status)
	}
	if pages > 1 {
		next := "/archive"
		if roomID != 0 {
			next += " " + strconv.FormatInt(roomID, 10)
		}
		fmt.Fprintf(&b, "Page %d of %d", n, pages)
		if n < pages {
			fmt.Fprintf(&b, "; older: %s page %d", next, n+1)
		}
	}
	return strings.TrimRight(b.String(), "\n"), nil
}

func (r *Router) archiveDelete(ctx context.Context, chat storage.Chat, id int64) (string, error) {
	rec, err := r.store.ArchiveItem(ctx, chat.ID, id)
	if err != nil {
		return "", err
	}
	if _, err := r.store.DeleteFromArchive(ctx, chat.ID, id); err != nil {
		return "", err
	}
	return fmt.Sprintf("Removed #%d (%s) from this chat's archive.", id, rec.Title), nil
}

func (r *Router) archiveLink(ctx context.Context, chat storage.Chat, id int64) (string, error) {
	rec, err := r.store.ArchiveItem(ctx, chat.ID, id)
	if err != nil {
		return "", err
	}
	if r.opts.Links == nil {
		return "", roomrec.Errorf(roomrec.EUNAVAILABLE, "Download links are off on this server.")
	}
	if rec.Status == storage.Writing {
		return "", userErr("#%d is still being recorded; ask again when it is finished.", id)
	}
	url, expires, err := r.opts.Links.Link(rec.ID)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("#%d %s (%s, %s):\n%s\nThe link works until %s.", rec.ID, rec.Title,
		formatDuration(rec.Duration), formatBytes(rec.Size), url, expires.Format("2006-01-02 15:04 MST")), nil
}

// keepUsage explains /archive keep.
const keepUsage = "Usage: /archive keep 30d, /archive keep 50GiB, /archive keep 30d 50GiB, or /archive keep off to remove this chat's limit."

// parseKeep reads the words after /archive keep: "off", or a number of
// days ("30d") and/or a size ("50GiB"). The zero Retention means off.
func parseKeep(args []string) (storage.Retention, error) {
	if len(args) == 1 && strings.EqualFold(args[0], "off") {
		return storage.Retention{}, nil
	}
	if len(args) > 2 {
		return storage.Retention{}, userErr("%s", keepUsage)
	}
	var keep storage.Retention
	for _, a := range args {
		num, unit := splitUnit(strings.ToLower(a))
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return storage.Retention{}, notKeepNumber(a)
		}
		switch unit {
		case "d", "day", "days":
			err = keepDays(&keep, n, a)
		case "gib", "gb", "g":
			err = keepGiB(&keep, n, a)
		default:
			if n > 0 {
				err = userErr("%q needs a unit, d or GiB. %s", shorten(a, 32), keepUsage)
			} else {
				err = notKeepNumber(a)
			}
		}
		if err != nil {
			return storage.Retention{}, err
		}
	}
	return keep, nil
}

// keepDays sets the days of a policy to n, as typed in word: once, from 1
// to maxKeepDays.
func keepDays(keep *storage.Retention, n int64, word string) error {
	if err := keepBounds(n, word, keep.MaxAge > 0, maxKeepDays, "days"); err != nil {
		return err
	}
	keep.MaxAge = time.Duration(n) * 24 * time.Hour
	return nil
}

// keepGiB sets the size of a policy to n GiB, as typed in word: once,
// from 1 to maxKeepGiB.
func keepGiB(keep *storage.Retention, n int64, word string) error {
	if err := keepBounds(n, word, keep.MaxBytes > 0, maxKeepGiB, "GiB"); err != nil {
		return err
	}
	keep.MaxBytes = n << 30
	return nil
}

// keepBounds refuses a part of a policy, n of unit as typed in word, that
// is not a number from 1 to most or was given before (set).
func keepBounds(n int64, word string, set bool, most int64, unit string) error {
	if n <= 0 {
		return notKeepNumber(word)
	}
	if set || n > most {
		return userErr("Keep between 1 and %d %s, once. %s", most, unit, keepUsage)
	}
	return nil
}

func notKeepNumber(word string) error {
	return userErr("%q is not a number of days or GiB. %s", shorten(word, 32), keepUsage)
}

// splitUnit splits "30d" into "30" and "d".
func splitUnit(s string) (num, unit string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i], s[i:]
}

// describeKeep says how long this chat keeps its recordings and why.
func (r *Router) describeKeep(ctx context.Context, chat storage.Chat) (string, error) {
	own, err := r.store.ChatRetention(ctx, chat.ID)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if own.IsZero() {
		b.WriteString("This chat has no limit of its own.")
	} else {
		fmt.Fprintf(&b, "This chat keeps recordings %s.", describeRetention(own))
	}
	if !r.opts.Retention.IsZero() {
		fmt.Fprintf(&b, " This server keeps them %s at most.", describeRetention(r.opts.Retention))
	}
	if r.opts.Retention.Tighter(own).IsZero() {
		b.WriteString(" Recordings stay until someone deletes them.")
	} else {
		b.WriteString(" The oldest go first, and a file is removed only when no chat keeps it.")
	}
	b.WriteString(" /archive keep 30d, 50GiB or off changes it (admins).")
	return b.String(), nil
}

// setKeep stores the chat's policy and applies it at once, so the reply
// can say what it removed.
func (r *Router) setKeep(ctx context.Context, chat storage.Chat, keep storage.Retention) (string, error) {
	if err := r.store.SetChatRetention(ctx, chat.ID, keep); err != nil {
		return "", err
	}
	var b strings.Builder
	if keep.IsZero() {
		b.WriteString("This chat no longer limits its archive.")
	} else {
		fmt.Fprintf(&b, "This chat now keeps recordings %s; older ones go first.", describeRetention(keep))
	}
	if effective := r.opts.Retention.Tighter(keep); effective != keep {
		fmt.Fprintf(&b, " The server's limit still applies: %s.", describeRetention(effective))
	}
	pruned, err := r.store.ApplyChatRetention(ctx, chat, r.opts.Retention)
	if err != nil {
		return "", err
	}
	if n := len(pruned.Recordings); n > 0 {
		fmt.Fprintf(&b, " Removed %d recording(s) past it", n)
		if pruned.Freed > 0 {
			fmt.Fprintf(&b, " (%s freed on disk)", formatBytes(pruned.Freed))
		}
		b.WriteString(".")
	}
	return b.String(), nil
}

// describeRetention puts a policy in words: "for 30 days and up to 50 GiB".
func describeRetention(k storage.Retention) string {
	var parts []string
	if k.MaxAge > 0 {
		days := int64(k.MaxAge / (24 * time.Hour))
		parts = append(parts, fmt.Sprintf("for %d day%s", days, plural(days)))
	}
	if k.MaxBytes > 0 {
		parts = append(parts, "up to "+formatBytes(k.MaxBytes))
	}
	return strings.Join(parts, " and ")
}

func plural(n int64) string {
	if n == 1 {
		return ""
	}
	return "s"
}
