package redact

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
)

func TestText(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"no URL", "dial tcp: connection refused", "dial tcp: connection refused"},
		{"signed stream URL in a url.Error",
			`Get "https://cn-gotcha01.bilivideo.com/live-bvc/1/live_1.flv?expires=1&sign=abc&trid=9": dial tcp: connection refused`,
			`Get "https://cn-gotcha01.bilivideo.com/live-bvc/1/live_1.flv?…": dial tcp: connection refused`},
		{"URL without a query is kept", "GET https://api.live.bilibili.com/room/v1/Room/room_init answered 412", "GET https://api.live.bilibili.com/room/v1/Room/room_init answered 412"},
		{"host only with a query", "http://127.0.0.1:8080?a=b", "http://127.0.0.1:8080?…"},
		{"fragment", "https://example.com/a#secret", "https://example.com/a?…"},
		{"websocket", "wss://zj-cn-live-comet.chat.bilibili.com:443/sub?token=x", "wss://zj-cn-live-comet.chat.bilibili.com:443/sub?…"},
		{"upper-case scheme", "HTTPS://Example.com/x?y=1", "HTTPS://Example.com/x?…"},
		{"two URLs", "from http://a/x?1 to ws://b/y?2 done", "from http://a/x?… to ws://b/y?… done"},
		{"closing punctuation stays", "(see https://a/b?c=d).", "(see https://a/b?…)."},
		{"Telegram token in the path",
			`Post "https://api.telegram.org/bot123456:AAE-secret_x/sendMessage": context deadline exceeded`,
			`Post "https://api.telegram.org/bot…/sendMessage": context deadline exceeded`},
		{"percent-encoded token", "https://api.telegram.org/bot123456%3AAAE/getMe", "https://api.telegram.org/bot…/getMe"},
		{"user info", "https://user:pass@proxy.example:3128/x", "https://…@proxy.example:3128/x"},
		{"not a bot path", "https://example.com/bottle/1", "https://example.com/bottle/1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Text(tt.in); got != tt.want {
				t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestSecrets(t *testing.T) {
	s := NewSecrets("", "abcdef", "abcdefgh-long")
	if got, want := s.Text("cookie abcdefgh-long and abcdef"), "cookie [redacted] and [redacted]"; got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
	var none Secrets
	if got := none.Text("plain http://a/b?c"); got != "plain http://a/b?…" {
		t.Errorf("zero Secrets: %q", got)
	}
}

type stringer struct{ s string }

func (s stringer) String() string { return s.s }

type nilErr struct{ msg *string }

func (e *nilErr) Error() string { return *e.msg }

// Everything a call site can hand slog is redacted: the message, strings,
// errors, Stringers, groups and a logger's own attributes.
func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), NewSecrets("TOKEN-123", "cookie-value", "3493117290")))
	signed := "https://cdn.example/live.flv?sign=SIG"
	u, _ := url.Parse(signed)
	log = log.With(slog.String("endpoint", "https://api.telegram.org/botTOKEN-123/x?offset=1"))
	log.WithGroup("g").Debug("fetching "+signed,
		slog.String("url", signed),
		slog.Any("err", fmt.Errorf("read: %w", &url.Error{Op: "Get", URL: signed, Err: errors.New("EOF")})),
		slog.Any("parsed", u),
		slog.Any("stringer", stringer{"cookie-value"}),
		slog.Group("inner", slog.String("cookie", "SESSDATA=cookie-value")),
		slog.Any("nil error", (*nilErr)(nil)),
		slog.Int("room", 5440),
		slog.Int64("uid", 3493117290),
	)
	out := buf.String()
	for _, bad := range []string{"SIG", "TOKEN-123", "cookie-value", "offset=1", "3493117290"} {
		if strings.Contains(out, bad) {
			t.Errorf("log holds %q:\n%s", bad, out)
		}
	}
	for _, want := range []string{"fetching https://cdn.example/live.flv?…", "g.url=", "g.inner.cookie=", "g.room=5440", "g.uid=[redacted]", "live.flv?…"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// A secret learnt while running (a login's new cookies) is hidden from then
// on, in a handler made before it.
func TestSecretsAddedLater(t *testing.T) {
	var buf bytes.Buffer
	secrets := NewSecrets("first-secret")
	log := slog.New(NewHandler(slog.NewTextHandler(&buf, nil), secrets)).With(slog.String("component", "x"))
	secrets.Add("later-secret-value", "")
	log.Info("cookie later-secret-value and first-secret")
	if out := buf.String(); strings.Contains(out, "secret-value") || strings.Contains(out, "first-secret") || !strings.Contains(out, "[redacted]") {
		t.Errorf("log = %q", out)
	}
}
