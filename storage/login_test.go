package storage_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"roomrec/storage"
)

func TestLoginIsKeptAndExpiresOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "roomrec.db")
	ctx := context.Background()
	s, err := storage.Open(ctx, path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Login(ctx); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Login before any = %v, want ErrNotFound", err)
	}
	at := time.UnixMilli(1_700_000_000_000)
	want := storage.BilibiliLogin{Cookies: `[{"Name":"SESSDATA","Value":"s3cr3t"}]`, RefreshToken: "rt", Uname: "录播姬", Mid: 42, LoggedIn: at, Checked: at}
	if err := s.SaveLogin(ctx, want); err != nil {
		t.Fatal(err)
	}
	if first, err := s.ExpireLogin(ctx); err != nil || !first {
		t.Errorf("ExpireLogin = %v, %v; want the first time", first, err)
	}
	if again, _ := s.ExpireLogin(ctx); again {
		t.Error("ExpireLogin reported a second time")
	}
	s.Close()

	for _, p := range []string{path, path + "-wal"} {
		if st, err := os.Stat(p); err == nil && st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600: it holds the login", filepath.Base(p), st.Mode().Perm())
		}
	}
	s, err = storage.Open(ctx, path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Login(ctx)
	want.Expired = true
	if err != nil || got != want {
		t.Errorf("after a reopen Login = %+v, %v; want %+v", got, err, want)
	}
	refreshed := want
	refreshed.Cookies, refreshed.Expired = `[{"Name":"SESSDATA","Value":"new"}]`, false
	if err := s.SaveLogin(ctx, refreshed); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Login(ctx); got != refreshed {
		t.Errorf("a new login does not replace the old: %+v", got)
	}
	if err := s.DeleteLogin(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Login(ctx); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Login after DeleteLogin = %v", err)
	}
}
