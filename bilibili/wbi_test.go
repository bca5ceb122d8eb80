package bilibili

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestWBIMixinKey(t *testing.T) {
	got := WBIMixinKey("7cd084941338484aae1ad9425b84077c", "4932caff0ff746eab6f01bf08b70ac45")
	if want := "ea1db124af3c7062474693fa704f4ff8"; got != want {
		t.Errorf("mixin key = %q, want %q", got, want)
	}
}

func TestSignWBI(t *testing.T) {
	mixin := WBIMixinKey("7cd084941338484aae1ad9425b84077c", "4932caff0ff746eab6f01bf08b70ac45")
	params := url.Values{"id": {"1017"}, "type": {"0"}, "web_location": {"444.8"}}
	got := SignWBI(params, mixin, time.Unix(1748266797, 0))
	want := "id=1017&type=0&web_location=444.8&wts=1748266797&w_rid=cf24f88ea0cbb61e7b29aed0c070187d"
	if got != want {
		t.Errorf("signed query = %q, want %q", got, want)
	}
	q, err := url.ParseQuery(got)
	if err != nil {
		t.Fatal(err)
	}
	if !VerifyWBI(q, mixin) {
		t.Error("VerifyWBI rejects a query SignWBI signed")
	}
	q.Set("id", "1018")
	if VerifyWBI(q, mixin) {
		t.Error("VerifyWBI accepts a query whose id changed after signing")
	}
}

func TestSignWBIStripsAndEscapes(t *testing.T) {
	params := url.Values{"foo": {"a b!'()*c"}, "bar": {"中"}}
	got := SignWBI(params, "k", time.Unix(1, 0))
	if !strings.HasPrefix(got, "bar=%E4%B8%AD&foo=a%20bc&wts=1&w_rid=") {
		t.Errorf("signed query = %q, want sorted keys, stripped !'()* and %%20 for space", got)
	}
}

func TestWBIKeyFromURL(t *testing.T) {
	got := WBIKeyFromURL("https://i0.hdslb.com/bfs/wbi/7cd084941338484aae1ad9425b84077c.png")
	if want := "7cd084941338484aae1ad9425b84077c"; got != want {
		t.Errorf("key = %q, want %q", got, want)
	}
}
