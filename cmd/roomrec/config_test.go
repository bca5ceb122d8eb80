package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := LoadConfig(envMap(nil), filepath.Join(t.TempDir(), ".env"))
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "./data" || c.HTTPAddr != "127.0.0.1:8080" || c.Quality != 10000 || c.Network != "any" || c.LogLevel != slog.LevelInfo {
		t.Errorf("defaults = %+v", c)
	}
	if c.DiscordAPIURL != "https://discord.com" || c.TelegramEndpoint != "https://api.telegram.org/bot%s/%s" {
		t.Errorf("platform defaults = %q, %q", c.DiscordAPIURL, c.TelegramEndpoint)
	}
}

func TestLoadConfigDotenvAndEnvironment(t *testing.T) {
	dotenv := filepath.Join(t.TempDir(), ".env")
	if err := os.WriteFile(dotenv, []byte("ROOMREC_QUALITY=400\nROOMREC_DATA_DIR=/from/file\nBILIBILI_COOKIE=SESSDATA=abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(envMap(map[string]string{"ROOMREC_DATA_DIR": "/from/env"}), dotenv)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/from/env" {
		t.Errorf("DataDir = %q, want the real environment to win", c.DataDir)
	}
	if c.Quality != 400 || c.BilibiliCookie != "SESSDATA=abc" {
		t.Errorf("Quality, cookie = %d, %q, want values from .env", c.Quality, c.BilibiliCookie)
	}
}

func TestLoadConfigReportsEveryProblem(t *testing.T) {
	_, err := LoadConfig(envMap(map[string]string{
		"ROOMREC_QUALITY":        "high",
		"ROOMREC_NETWORK":        "ipv5",
		"ROOMREC_LOG_LEVEL":      "loud",
		"BILIBILI_API_URL":       "localhost:8090",
		"ROOMREC_RETENTION_DAYS": "-3",
		"ROOMREC_SPLIT_SIZE_MB":  "2GB",
		"ROOMREC_SPLIT_EVERY":    "1s",
		"ROOMREC_FILE_NAME":      "{title}/{part}",
		"ROOMREC_HTTP_ADDR":      "notanaddress",
		"ROOMREC_CONTAINER":      "mkv",
		"ROOMREC_STREAM_ORDER":   "flv-av1",
		"ROOMREC_API_RATE":       "fast",
		"ROOMREC_API_BURST":      "0",
	}), filepath.Join(t.TempDir(), ".env"))
	if err == nil {
		t.Fatal("LoadConfig accepted bad values")
	}
	want := []string{"ROOMREC_QUALITY", "ROOMREC_NETWORK", "ROOMREC_LOG_LEVEL", "BILIBILI_API_URL", "ROOMREC_RETENTION_DAYS",
		"ROOMREC_SPLIT_SIZE_MB", "ROOMREC_SPLIT_EVERY", "ROOMREC_FILE_NAME", "ROOMREC_HTTP_ADDR", "ROOMREC_CONTAINER", "ROOMREC_STREAM_ORDER",
		"ROOMREC_API_RATE", "ROOMREC_API_BURST"}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %s", err, w)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != len(want) {
		t.Errorf("error has %d lines, want one per problem (%d)", n, len(want))
	}
}

// .env.example is what a newcomer copies to .env: it must load as is and
// mean the defaults.
func TestEnvExampleLoads(t *testing.T) {
	c, err := LoadConfig(envMap(nil), filepath.Join("..", "..", ".env.example"))
	if err != nil {
		t.Fatalf(".env.example does not load: %v", err)
	}
	def, _ := LoadConfig(envMap(nil), filepath.Join(t.TempDir(), ".env"))
	if !reflect.DeepEqual(c, def) {
		t.Errorf(".env.example gives %+v, the defaults are %+v", c, def)
	}
}

func TestLoadConfigTimezone(t *testing.T) {
	tests := []struct {
		name, value string
		want        string // the zone's name; empty: refused
	}{
		{"default", "", "Asia/Shanghai"},
		{"another zone", "Europe/Berlin", "Europe/Berlin"},
		{"UTC", "UTC", "UTC"},
		{"not a zone", "Mars/Olympus", ""},
		{"the machine's zone", "Local", ""},
		{"empty", " ", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			if tt.value != "" {
				env["ROOMREC_TIMEZONE"] = tt.value
			}
			c, err := LoadConfig(envMap(env), filepath.Join(t.TempDir(), ".env"))
			if tt.want == "" {
				if err == nil || !strings.Contains(err.Error(), "ROOMREC_TIMEZONE") {
					t.Errorf("LoadConfig = %v, want ROOMREC_TIMEZONE refused", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Timezone == nil || c.Timezone.String() != tt.want {
				t.Errorf("Timezone = %v, want %s", c.Timezone, tt.want)
			}
		})
	}
}
