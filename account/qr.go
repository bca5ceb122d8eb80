package account

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/skip2/go-qrcode"

	"roomrec"
	"roomrec/bilibili"
)

// QR is a QR login waiting to be scanned: the login URL, and the same as a
// PNG to show.
type QR struct {
	URL string
	PNG []byte
}

// Progress is what happened to a QR login.
type Progress int

const (
	Scanned  Progress = iota + 1 // scanned; waiting for the confirmation on the phone
	Expired                      // the code ran out; /login again for a new one
	LoggedIn                     // confirmed: the login is in use and stored
	Failed                       // Bilibili could not be asked, or the login not stored
	Replaced                     // a newer /login took over
)

// Update reports a QR login's progress. Uname is set with LoggedIn; Err
// with Failed.
type Update struct {
	Progress Progress
	Uname    string
	Err      error
}

// qrLifetime is how long a QR login is polled: Bilibili's codes expire
// after 180 s, and say so; this bounds a poll whose answers never come.
const qrLifetime = 200 * time.Second

// qrPixels is the PNG's width and height: large enough for a phone camera
// across a room, small enough for any chat.
const qrPixels = 384

// BeginQR asks Bilibili for a login QR code and returns it; it then polls
// every PollEvery in the background and calls report with each change,
// until the login is confirmed, expires or fails. A second BeginQR
// replaces a pending one (report of the first gets Replaced). It returns
// an error if Bilibili does not hand out a code.
func (k *Keeper) BeginQR(ctx context.Context, report func(Update)) (QR, error) {
	code, err := k.api.QRLogin(ctx)
	if err != nil {
		return QR{}, fmt.Errorf("ask Bilibili for a login QR code: %w", err)
	}
	png, err := qrcode.Encode(code.URL, qrcode.Medium, qrPixels)
	if err != nil {
		return QR{}, fmt.Errorf("draw the login QR code: %w", err)
	}
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return QR{}, fmt.Errorf("roomrec is stopping")
	}
	if k.pending != nil {
		k.pending()
	}
	k.qrGen++
	gen := k.qrGen
	// Bilibili's code lives 180 s; a poll Bilibili keeps refusing must
	// not outlive it.
	pctx, cancel := context.WithTimeout(k.ctx, qrLifetime)
	k.pending = cancel
	k.wg.Add(1) // under mu and before Close: Close sets closed under mu first
	k.mu.Unlock()
	go func() {
		defer k.wg.Done()
		defer cancel()
		k.poll(pctx, code.Key, gen, report)
	}()
	return QR{URL: code.URL, PNG: png}, nil
}

// poll follows one QR login until it ends.
func (k *Keeper) poll(ctx context.Context, key string, gen int, report func(Update)) {
	current := func() bool {
		k.mu.Lock()
		defer k.mu.Unlock()
		return k.qrGen == gen && !k.closed
	}
	scanned := false
	for {
		timer := time.NewTimer(k.opts.PollEvery)
		select {
		case <-ctx.Done():
			timer.Stop()
			k.mu.Lock()
			replaced, closed := k.qrGen != gen, k.closed
			k.mu.Unlock()
			switch {
			case closed:
			case replaced:
				report(Update{Progress: Replaced})
			case errors.Is(ctx.Err(), context.DeadlineExceeded):
				report(Update{Progress: Expired})
			}
			return
		case <-timer.C:
		}
		p, err := k.api.PollQR(ctx, key)
		if ctx.Err() != nil {
			continue // replaced or closing: said above
		}
		if err != nil {
			// A poll that fails once is tried again at the next tick;
			// the code itself expires on Bilibili's side.
			k.log.Debug("QR login poll failed", roomrec.LogErr(err))
			continue
		}
		switch p.State {
		case bilibili.QRWaiting:
		case bilibili.QRScanned:
			if !scanned {
				scanned = true
				report(Update{Progress: Scanned})
			}
		case bilibili.QRExpired:
			report(Update{Progress: Expired})
			return
		case bilibili.QRConfirmed:
			if !current() {
				return
			}
			uname, err := k.adopt(ctx, p.Credentials)
			if err != nil {
				report(Update{Progress: Failed, Err: err})
			} else {
				report(Update{Progress: LoggedIn, Uname: uname})
			}
			return
		}
	}
}

// adopt makes confirmed credentials the login: the client uses them, nav
// says whose they are, and they are stored.
//
// The new cookies are checked with their own nav before the client uses
// them: a -101 then is about them alone, not the login in use.
func (k *Keeper) adopt(ctx context.Context, cred bilibili.Credentials) (string, error) {
	k.secret(cred)
	acct, err := k.api.NavAs(ctx, cred)
	if err != nil || !acct.IsLogin {
		if err == nil {
			err = fmt.Errorf("Bilibili does not accept the new login")
		}
		return "", fmt.Errorf("check the new login: %w", err)
	}
	if err := k.save(ctx, cred, acct.Uname, k.opts.Now()); err != nil {
		return "", fmt.Errorf("store the new login: %w", err)
	}
	k.mu.Lock()
	k.status = Status{LoggedIn: true, Uname: acct.Uname}
	k.cred = cred
	k.api.SetLogin(cred) // under mu: a LoggedOut now is about this login
	k.mu.Unlock()
	k.log.Info("logged in to Bilibili", slog.String(roomrec.KeyUname, acct.Uname))
	return acct.Uname, nil
}
