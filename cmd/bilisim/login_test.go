package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestBannerShowsLogin(t *testing.T) {
	var buf bytes.Buffer
	printBanner(&buf, "http://127.0.0.1:8090", 1, 150, demoRooms, demoOffers)
	for _, want := range []string{
		"account 10086 演示账号",
		"at most qn 150 without a login",
		"curl -X POST http://127.0.0.1:8090/_sim/qr/latest/scan",
		"curl -X POST 'http://127.0.0.1:8090/_sim/qr/latest/confirm?mid=10086'",
		"/_sim/accounts/10086/refreshdue",
		"/_sim/accounts/10086/logout",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, buf.String())
		}
	}
}

// currentQn asks play info for qn 10000 of the live demo room 5440.
func currentQn(t *testing.T, base string) int {
	t.Helper()
	resp, err := http.Get(base + "/xlive/web-room/v2/index/getRoomPlayInfo?room_id=5440&protocol=0,1&format=0,1,2&codec=0,1&qn=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			PlayurlInfo struct {
				Playurl struct {
					Stream []struct {
						Format []struct {
							Codec []struct {
								CurrentQn int `json:"current_qn"`
							} `json:"codec"`
						} `json:"format"`
					} `json:"stream"`
				} `json:"playurl"`
			} `json:"playurl_info"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	s := body.Data.PlayurlInfo.Playurl.Stream
	if len(s) == 0 || len(s[0].Format) == 0 || len(s[0].Format[0].Codec) == 0 {
		t.Fatalf("no stream in play info of the live demo room")
	}
	return s[0].Format[0].Codec[0].CurrentQn
}

func TestRunDemoAccountAndGuestQuality(t *testing.T) {
	base, _, _, _ := startRun(t, "-addr", "127.0.0.1:0")
	if qn := currentQn(t, base); qn != 150 {
		t.Errorf("a guest gets qn %d by default, want 150 as on Bilibili", qn)
	}
	resp, err := http.Get(base + "/_sim/accounts")
	if err != nil {
		t.Fatal(err)
	}
	list, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(list), "10086 演示账号") {
		t.Errorf("GET /_sim/accounts = %q, want the demo account", list)
	}

	base, _, _, _ = startRun(t, "-addr", "127.0.0.1:0", "-guest-qn", "0")
	if qn := currentQn(t, base); qn != 10000 {
		t.Errorf("with -guest-qn 0 a guest gets qn %d, want 10000", qn)
	}
}

func TestRunRejectsANegativeGuestQn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := run(ctx, []string{"-guest-qn", "-1"}, io.Discard, io.Discard); err == nil {
		t.Error("run(-guest-qn -1) = nil, want an error")
	}
}
