package storage

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// BilibiliLogin is the Bilibili account roomrec records with. Cookies and
// RefreshToken are secrets: they go to Bilibili and nowhere else.
type BilibiliLogin struct {
	Cookies      string // the session's cookies, encoded by the caller (JSON)
	RefreshToken string
	Uname        string
	Mid          int64
	LoggedIn     time.Time
	Checked      time.Time // the last refresh check (or refresh)
	Expired      bool      // Bilibili said the session is over (-101)
}

// Login returns the stored login. It returns ErrNotFound if nobody logged in.
func (s *Store) Login(ctx context.Context) (BilibiliLogin, error) {
	var l BilibiliLogin
	var loggedIn, checked int64
	err := s.db.QueryRowContext(ctx, `
		SELECT cookies, refresh_token, uname, mid, logged_in_at, checked_at, expired
		FROM bilibili_login WHERE id = 1`).Scan(&l.Cookies, &l.RefreshToken, &l.Uname, &l.Mid, &loggedIn, &checked, &l.Expired)
	if errors.Is(err, sql.ErrNoRows) {
		return BilibiliLogin{}, notFound("Nobody is logged in to Bilibili.")
	}
	if err != nil {
		return BilibiliLogin{}, err
	}
	l.LoggedIn, l.Checked = time.UnixMilli(loggedIn), time.UnixMilli(checked)
	return l, nil
}

// SaveLogin stores a login (a new one, or the cookies of a refresh) in
// one transaction, replacing what was there; it is not expired.
func (s *Store) SaveLogin(ctx context.Context, l BilibiliLogin) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
			INSERT INTO bilibili_login (id, cookies, refresh_token, uname, mid, logged_in_at, checked_at, expired)
			VALUES (1, ?, ?, ?, ?, ?, ?, 0)
			ON CONFLICT (id) DO UPDATE SET cookies = excluded.cookies, refresh_token = excluded.refresh_token,
				uname = excluded.uname, mid = excluded.mid, logged_in_at = excluded.logged_in_at,
				checked_at = excluded.checked_at, expired = 0`,
			l.Cookies, l.RefreshToken, l.Uname, l.Mid, l.LoggedIn.UnixMilli(), l.Checked.UnixMilli())
		return err
	})
}

// LoginChecked notes a refresh check that found nothing to do.
func (s *Store) LoginChecked(ctx context.Context, at time.Time) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE bilibili_login SET checked_at = ? WHERE id = 1`, at.UnixMilli())
		return err
	})
}

// ExpireLogin marks the login expired and reports whether it was not
// already, so the owners hear of it once.
func (s *Store) ExpireLogin(ctx context.Context) (bool, error) {
	var changed bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE bilibili_login SET expired = 1 WHERE id = 1 AND expired = 0`)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		changed = n > 0
		return err
	})
	return changed, err
}

// DeleteLogin forgets the login. Forgetting none is not an error.
func (s *Store) DeleteLogin(ctx context.Context) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM bilibili_login`)
		return err
	})
}
