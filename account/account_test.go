package account_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"roomrec/account"
	"roomrec/bilibili"
	"roomrec/bilibili/bilibilitest"
	"roomrec/storage"
)

const mid = 42

// world is a Keeper on the simulator and a real SQLite store.
type world struct {
	sim     *bilibilitest.Server
	api     *bilibili.Client
	store   *storage.Store
	keeper  *account.Keeper
	expired chan string
	dbPath  string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	sim := bilibilitest.Start(t, bilibilitest.Config{GuestMaxQn: 150})
	sim.AddAccount(bilibilitest.Account{Mid: mid, Uname: "录播账号"})
	w := &world{sim: sim, expired: make(chan string, 4), dbPath: filepath.Join(t.TempDir(), "roomrec.db")}
	w.open(t)
	return w
}

// open starts a Keeper (again, for a restart) on the same database.
func (w *world) open(t *testing.T) {
	t.Helper()
	var keeper *account.Keeper
	var mu sync.Mutex
	w.api = bilibili.NewClient(bilibili.Options{
		Endpoints:  bilibili.SingleEndpoint(w.sim.URL()),
		RefreshKey: w.sim.RefreshPublicKey(),
		OnLoggedOut: func() {
			mu.Lock()
			k := keeper
			mu.Unlock()
			k.LoggedOut()
		},
	}, nil, nil)
	store, err := storage.Open(context.Background(), w.dbPath, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.store = store
	mu.Lock()
	keeper = account.New(w.api, store, account.Options{PollEvery: 20 * time.Millisecond, OnExpired: func(u string) { w.expired <- u }})
	mu.Unlock()
	w.keeper = keeper
	if err := keeper.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	keeper.StartChecks()
	t.Cleanup(func() { keeper.Close(); store.Close() })
}

func (w *world) close() { w.keeper.Close(); w.store.Close() }

// updates collects a QR login's reports.
type updates struct {
	mu  sync.Mutex
	got []account.Update
}

func (u *updates) add(x account.Update) { u.mu.Lock(); u.got = append(u.got, x); u.mu.Unlock() }

func (u *updates) wait(t *testing.T, p account.Progress) account.Update {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		u.mu.Lock()
		for _, x := range u.got {
			if x.Progress == p {
				u.mu.Unlock()
				return x
			}
		}
		u.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no update %d; got %+v", p, u.got)
	return account.Update{}
}

// decodeQR reads the URL back out of the PNG, as a phone would.
func decodeQR(t *testing.T, b []byte) string {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("the QR code does not decode: %v", err)
	}
	return res.GetText()
}

func keyOf(t *testing.T, url string) string {
	t.Helper()
	_, rest, ok := strings.Cut(url, "qrcode_key=")
	if !ok {
		t.Fatalf("no qrcode_key in %q", url)
	}
	key, _, _ := strings.Cut(rest, "&")
	return key
}

func TestQRLoginIsKeptAcrossARestart(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	if st := w.keeper.Status(); st.LoggedIn || st.Uname != "" {
		t.Fatalf("status before any login = %+v", st)
	}
	var u updates
	qr, err := w.keeper.BeginQR(ctx, u.add)
	if err != nil {
		t.Fatal(err)
	}
	if got := decodeQR(t, qr.PNG); got != qr.URL {
		t.Fatalf("the PNG says %q, the login URL is %q", got, qr.URL)
	}
	key := keyOf(t, qr.URL)
	if err := w.sim.ScanQR(key); err != nil {
		t.Fatal(err)
	}
	u.wait(t, account.Scanned)
	if err := w.sim.ConfirmQR(key, mid); err != nil {
		t.Fatal(err)
	}
	if got := u.wait(t, account.LoggedIn); got.Uname != "录播账号" {
		t.Errorf("logged in as %q", got.Uname)
	}
	if st := w.keeper.Status(); !st.LoggedIn || st.Uname != "录播账号" {
		t.Errorf("status = %+v", st)
	}
	info, err := w.api.PlayInfo(ctx, mustRoom(t, w.sim), 10000)
	if err != nil || len(info.Streams) == 0 || info.Streams[0].Qn != 10000 {
		t.Errorf("play info after the login: %+v, %v; want qn 10000", info, err)
	}

	w.close()
	w.open(t)
	if st := w.keeper.Status(); !st.LoggedIn || st.Uname != "录播账号" {
		t.Errorf("after a restart status = %+v, want still logged in", st)
	}
	if acct, err := w.api.Nav(ctx); err != nil || !acct.IsLogin || acct.Mid != mid {
		t.Errorf("after a restart nav = %+v, %v", acct, err)
	}
}

func mustRoom(t *testing.T, sim *bilibilitest.Server) int64 {
	t.Helper()
	r := sim.AddRoom(bilibilitest.RoomConfig{RoomID: 5440, Anchor: "主播", Title: "t", Live: true})
	return r.ID()
}

func TestSecondQRReplacesTheFirstAndExpiryIsTold(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	var first, second updates
	if _, err := w.keeper.BeginQR(ctx, first.add); err != nil {
		t.Fatal(err)
	}
	qr, err := w.keeper.BeginQR(ctx, second.add)
	if err != nil {
		t.Fatal(err)
	}
	first.wait(t, account.Replaced)
	if err := w.sim.ExpireQR(keyOf(t, qr.URL)); err != nil {
		t.Fatal(err)
	}
	second.wait(t, account.Expired)
	if st := w.keeper.Status(); st.LoggedIn {
		t.Errorf("status = %+v after an expired code", st)
	}
}

func TestLoggedOutByBilibiliIsToldOnceAndRemembered(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	var u updates
	qr, _ := w.keeper.BeginQR(ctx, u.add)
	// Log in through the QR flow so the login is stored.
	key := keyOf(t, qr.URL)
	w.sim.ScanQR(key)
	w.sim.ConfirmQR(key, mid)
	u.wait(t, account.LoggedIn)

	w.sim.LogOut(mid)
	for range 2 { // nav sees -101 twice; the owners hear of it once
		w.api.Nav(ctx)
	}
	select {
	case who := <-w.expired:
		if who != "录播账号" {
			t.Errorf("OnExpired(%q)", who)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the owners were not told the login expired")
	}
	select {
	case <-w.expired:
		t.Error("told twice")
	case <-time.After(200 * time.Millisecond):
	}
	if st := w.keeper.Status(); st.LoggedIn || !st.Expired {
		t.Errorf("status = %+v, want expired", st)
	}
	w.close()
	w.open(t)
	if st := w.keeper.Status(); st.LoggedIn || !st.Expired {
		t.Errorf("after a restart status = %+v, want still expired and not used", st)
	}
}

func TestDueRefreshIsCarriedOut(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	var u updates
	qr, _ := w.keeper.BeginQR(ctx, u.add)
	key := keyOf(t, qr.URL)
	w.sim.ScanQR(key)
	w.sim.ConfirmQR(key, mid)
	u.wait(t, account.LoggedIn)
	before, _ := w.store.Login(ctx)

	w.sim.MakeRefreshDue(mid)
	w.close()
	w.open(t) // a start checks at once
	deadline := time.Now().Add(5 * time.Second)
	for {
		after, _ := w.store.Login(ctx)
		if after.Cookies != before.Cookies {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the due refresh was not carried out")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if acct, err := w.api.Nav(ctx); err != nil || !acct.IsLogin {
		t.Errorf("nav with the refreshed cookies = %+v, %v", acct, err)
	}
	// The refresh was confirmed: the old session is retired.
	var old []bilibili.Cookie
	json.Unmarshal([]byte(before.Cookies), &old)
	for _, c := range old {
		if c.Name == "SESSDATA" && w.sim.SessionValid(c.Value) {
			t.Error("the session before the refresh still works: the refresh was not confirmed")
		}
	}
}
