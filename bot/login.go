package bot

import (
	"cmp"
	"context"
	"fmt"
	"strings"

	"roomrec"
	"roomrec/account"
	"roomrec/storage"
)

// Account is the Bilibili login, for /login, /logout and /status.
// *account.Keeper implements it.
type Account interface {
	Status() account.Status
	BeginQR(ctx context.Context, report func(account.Update)) (account.QR, error)
	Logout(ctx context.Context) error
}

// Messenger sends messages outside a command's reply: the QR code and the
// login's progress. *Outbox implements it.
type Messenger interface {
	Send(chat Chat, m Message, done func(id string, err error))
}

// Owner is one person who runs this roomrec (ROOMREC_OWNERS): only owners
// may log roomrec into a Bilibili account.
type Owner struct {
	Platform storage.Platform // storage.Telegram or storage.Discord
	UserID   string
}

// String is the owner as ROOMREC_OWNERS writes it: telegram:123.
func (o Owner) String() string { return string(o.Platform) + ":" + o.UserID }

// ParseOwners reads ROOMREC_OWNERS: comma-separated telegram:<user id> and
// discord:<user id>. It returns an error naming the first entry it cannot
// read.
func ParseOwners(s string) ([]Owner, error) {
	var owners []Owner
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, id, _ := strings.Cut(item, ":")
		platform := storage.Platform(name)
		if (platform != storage.Telegram && platform != storage.Discord) || id == "" || strings.Trim(id, "0123456789") != "" {
			return nil, fmt.Errorf("%q is not telegram:<user id> or discord:<user id> (a number)", item)
		}
		owners = append(owners, Owner{Platform: platform, UserID: id})
	}
	return owners, nil
}

// isOwner reports whether the sender of req runs this roomrec: an owner,
// or whoever has the console's terminal.
func (r *Router) isOwner(req Request) bool {
	if req.Chat.Platform == storage.Console {
		return true
	}
	for _, o := range r.opts.Owners {
		if o.Platform == req.Chat.Platform && o.UserID == req.UserID && req.UserID != "" {
			return true
		}
	}
	return false
}

// mayLogin says why req may not /login or /logout, or nil if it may. The
// QR code of a login must never reach a group: any member who scanned it
// would tie their account to this server.
func (r *Router) mayLogin(req Request, cmd string) error {
	switch {
	case r.opts.Account == nil:
		return roomrec.Errorf(roomrec.EUNAVAILABLE, "Logging in to Bilibili is not set up on this roomrec.")
	case !req.Chat.Private:
		return refuse("/%s works only in a private chat with me, where only you see the QR code. Nothing was changed.", cmd)
	case r.isOwner(req):
		return nil
	case len(r.opts.Owners) == 0:
		return refuse("Only the people who run this roomrec may /%s, and none is named yet: put ROOMREC_OWNERS=%s:%s in its environment (or .env) and restart it.",
			cmd, req.Chat.Platform, cmp.Or(req.UserID, "<your user id>"))
	}
	return refuse("Only the people who run this roomrec (ROOMREC_OWNERS) may /%s.", cmd)
}

// login is /login: a QR code to scan with the Bilibili app, then a message
// at each step until the login is confirmed or the code expires.
func (r *Router) login(ctx context.Context, req Request) (string, error) {
	if err := r.mayLogin(req, "login"); err != nil {
		return "", err
	}
	chat := req.Chat
	qr, err := r.opts.Account.BeginQR(ctx, func(u account.Update) {
		if m, ok := loginProgressMessage(u); ok {
			r.opts.Messages.Send(chat, m, nil)
		}
	})
	if err != nil {
		return "", err
	}
	caption := "Scan this with the Bilibili app (我的 → 扫一扫) and confirm on your phone to log roomrec in; the code is good for 3 minutes. " +
		"Use a secondary account: Bilibili may flag an account used for recording."
	if chat.Platform == storage.Console {
		caption += "\nOpen it as a QR code: " + qr.URL
	}
	r.opts.Messages.Send(chat, Message{Text: caption, Photo: qr.PNG, PhotoName: "bilibili-login.png"}, nil)
	return "Here is a login QR code. A new /login replaces it.", nil
}

// loginProgressMessage tells the owner what became of a QR login.
func loginProgressMessage(u account.Update) (Message, bool) {
	switch u.Progress {
	case account.Scanned:
		return Message{Text: "Scanned. Now confirm the login on your phone."}, true
	case account.Expired:
		return Message{Text: "The QR code expired. /login for a new one."}, true
	case account.LoggedIn:
		return Message{Text: fmt.Sprintf("✅ Logged in to Bilibili as %s. The next broadcasts are recorded at full quality.", u.Uname)}, true
	case account.Failed:
		return Message{Text: "The login did not go through (" + briefError(u.Err) + "). /login to try again."}, true
	}
	return Message{}, false // Replaced: the newer /login speaks for itself
}

// logout is /logout: forget the account; recording goes on without it.
func (r *Router) logout(ctx context.Context, req Request) (string, error) {
	if err := r.mayLogin(req, "logout"); err != nil {
		return "", err
	}
	st := r.opts.Account.Status()
	if err := r.opts.Account.Logout(ctx); err != nil {
		return "", err
	}
	if st.Uname == "" {
		return "roomrec was not logged in to Bilibili. Nothing changed.", nil
	}
	return fmt.Sprintf("Logged out %s. Recording goes on without a login, which Bilibili limits to 480p.", st.Uname), nil
}

// loginLine is /status's line about the login. It never shows a secret.
func (r *Router) loginLine() string {
	if r.opts.Account == nil {
		return ""
	}
	st := r.opts.Account.Status()
	switch {
	case st.LoggedIn && st.FromCookie:
		return "Bilibili: logged in as " + st.Uname + " (BILIBILI_COOKIE)"
	case st.LoggedIn:
		return "Bilibili: logged in as " + st.Uname
	case st.Expired:
		return fmt.Sprintf("Bilibili: the login of %s expired; recordings are limited to 480p (an owner can /login)", st.Uname)
	}
	return "Bilibili: not logged in; recordings are limited to 480p (an owner can /login)"
}

// LoginExpiredMessage tells the owners that Bilibili ended the login.
func LoginExpiredMessage(uname string) Message {
	return Message{Text: fmt.Sprintf("⚠️ The Bilibili login of %s expired: recordings are limited to 480p until you /login again (here, in this chat).", cmp.Or(uname, "roomrec"))}
}
