package account

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"roomrec/bilibili"
	"roomrec/bilibili/bilibilitest"
	"roomrec/storage"
)

func keeperOn(t *testing.T, sim *bilibilitest.Server, cookie string, onExpired func(string)) (*Keeper, *bilibili.Client) {
	t.Helper()
	var k *Keeper
	api := bilibili.NewClient(bilibili.Options{Endpoints: bilibili.SingleEndpoint(sim.URL()), Cookie: cookie,
		OnLoggedOut: func() { k.LoggedOut() }}, nil, nil)
	store, err := storage.Open(context.Background(), filepath.Join(t.TempDir(), "roomrec.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k = New(api, store, Options{OnExpired: onExpired})
	if err := k.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close(); store.Close() })
	return k, api
}

// A new login Bilibili refuses (-101 to its own cookies) is not blamed on
// the login in use: that one stays, unexpired, and nobody is told.
func TestRefusedNewLoginLeavesTheCurrentOne(t *testing.T) {
	sim := bilibilitest.Start(t, bilibilitest.Config{})
	sim.AddAccount(bilibilitest.Account{Mid: 1, Uname: "在用"})
	sim.AddAccount(bilibilitest.Account{Mid: 2, Uname: "新的"})
	told := make(chan string, 1)
	k, api := keeperOn(t, sim, "", func(u string) { told <- u })
	ctx := context.Background()
	current, _ := sim.IssueLogin(1)
	if _, err := k.adopt(ctx, current); err != nil {
		t.Fatal(err)
	}
	refused, _ := sim.IssueLogin(2)
	sim.ExpireSession(refused.Value("SESSDATA"))
	if _, err := k.adopt(ctx, refused); err == nil {
		t.Fatal("a login Bilibili refuses was adopted")
	}
	if st := k.Status(); !st.LoggedIn || st.Expired || st.Uname != "在用" {
		t.Errorf("status = %+v, want the login in use kept", st)
	}
	if acct, err := api.Nav(ctx); err != nil || acct.Uname != "在用" {
		t.Errorf("the client is logged in as %+v, %v; want 在用", acct, err)
	}
	select {
	case u := <-told:
		t.Errorf("the owners were told %q expired", u)
	case <-time.After(200 * time.Millisecond):
	}
}

// A BILIBILI_COOKIE that is logged in shows as such, not as "not logged in".
func TestConfiguredCookieIsReported(t *testing.T) {
	sim := bilibilitest.Start(t, bilibilitest.Config{})
	sim.AddAccount(bilibilitest.Account{Mid: 3, Uname: "配置的"})
	cred, _ := sim.IssueLogin(3)
	var parts []string
	for _, c := range cred.Cookies {
		parts = append(parts, c.Name+"="+c.Value)
	}
	k, _ := keeperOn(t, sim, strings.Join(parts, "; "), nil)
	k.StartChecks()
	deadline := time.Now().Add(5 * time.Second)
	for k.Status().Uname == "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := k.Status(); !st.LoggedIn || !st.FromCookie || st.Uname != "配置的" {
		t.Errorf("status = %+v, want logged in as 配置的 from BILIBILI_COOKIE", st)
	}
}
