package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/joho/godotenv"

	"roomrec/bilibili"
	"roomrec/bot"
	"roomrec/recording"
	"roomrec/webhook"
)

// Config is everything roomrec reads from the environment. Names and
// defaults are the contract in DESIGN.md.
type Config struct {
	DataDir          string
	HTTPAddr         string
	PublicURL        string
	LogLevel         slog.Level
	TelegramToken    string
	TelegramEndpoint string
	DiscordToken     string
	DiscordGuildID   string
	DiscordAPIURL    string
	BilibiliAPIURL   string
	BilibiliCookie   string
	Quality          int
	Network          string
	APIRate          float64 // ROOMREC_API_RATE: Bilibili API requests a second, steady
	APIBurst         int     // ROOMREC_API_BURST: and at once
	MinFreeMB        uint64  // disk guard: no new file below this much free space
	RetentionDays    int     // per-chat archive limits; 0 = none
	RetentionGiB     int
	SplitSizeMB      int64         // start a new file past this size; 0 = never
	SplitEvery       time.Duration // start a new file past this much media; 0 = never
	FileName         string        // file name template, see recording.FileName
	Owners           []bot.Owner   // ROOMREC_OWNERS: who may /login
	Container        recording.Container
	StreamOrder      []bilibili.StreamKind // which streams to record, best first, at equal quality
	Timezone         *time.Location        // ROOMREC_TIMEZONE: the clock of /rules … hours
	WebhookURLs      []string              // ROOMREC_WEBHOOK_URLS: each gets every event (BililiveRecorder webhook v2)
	WebhookSecret    string                // signs each webhook POST when set
}

// defaultStreamOrder is ROOMREC_STREAM_ORDER's default, as the user writes it.
var defaultStreamOrder = func() string {
	words := make([]string, len(bilibili.DefaultStreamOrder))
	for i, k := range bilibili.DefaultStreamOrder {
		words[i] = k.String()
	}
	return strings.Join(words, ",")
}()

// minSecretCookieValue is the shortest cookie value treated as a secret:
// SESSDATA and bili_jct are long, while replacing every "0" or "1" a flag
// cookie holds would garble the log without hiding anything.
const minSecretCookieValue = 6

// Secrets are the configured values no log may print: the bot tokens,
// the webhook secret and BILIBILI_COOKIE, whole and each of its values.
func (c Config) Secrets() []string {
	secrets := []string{c.TelegramToken, c.DiscordToken, c.BilibiliCookie, c.WebhookSecret}
	for _, part := range strings.Split(c.BilibiliCookie, ";") {
		_, value, ok := strings.Cut(part, "=")
		if value = strings.Trim(strings.TrimSpace(value), `"`); ok && len(value) >= minSecretCookieValue {
			secrets = append(secrets, value)
		}
	}
	return secrets
}

// RecordingsDir is where recorded files live, one directory per real room id.
func (c Config) RecordingsDir() string { return filepath.Join(c.DataDir, "recordings") }

// LoadConfig reads the configuration from lookup (the real environment)
// and, for variables it does not set, from the .env file at dotenvPath if
// there is one. It returns every problem it finds, one error each, so a user
// fixes them all in one go.
func LoadConfig(lookup func(string) (string, bool), dotenvPath string) (Config, error) {
	file, err := godotenv.Read(dotenvPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return Config{}, fmt.Errorf("read %s: %w", dotenvPath, err)
	}
	get := func(name, def string) string {
		if v, ok := lookup(name); ok {
			return strings.TrimSpace(v)
		}
		if v, ok := file[name]; ok {
			return strings.TrimSpace(v)
		}
		return def
	}

	var problems []error
	c := Config{
		DataDir:          get("ROOMREC_DATA_DIR", "./data"),
		HTTPAddr:         get("ROOMREC_HTTP_ADDR", "127.0.0.1:8080"),
		PublicURL:        strings.TrimRight(get("ROOMREC_PUBLIC_URL", ""), "/"),
		TelegramToken:    get("TELEGRAM_BOT_TOKEN", ""),
		TelegramEndpoint: get("TELEGRAM_API_ENDPOINT", "https://api.telegram.org/bot%s/%s"),
		DiscordToken:     get("DISCORD_BOT_TOKEN", ""),
		DiscordGuildID:   get("DISCORD_GUILD_ID", ""),
		DiscordAPIURL:    strings.TrimRight(get("DISCORD_API_URL", "https://discord.com"), "/"),
		BilibiliAPIURL:   strings.TrimRight(get("BILIBILI_API_URL", ""), "/"),
		BilibiliCookie:   get("BILIBILI_COOKIE", ""),
		Network:          get("ROOMREC_NETWORK", "any"),
		WebhookSecret:    get("ROOMREC_WEBHOOK_SECRET", ""),
	}

	if c.DataDir == "" {
		problems = append(problems, errors.New("ROOMREC_DATA_DIR is empty; leave it unset for ./data or name a directory"))
	}
	if err := c.LogLevel.UnmarshalText([]byte(get("ROOMREC_LOG_LEVEL", "info"))); err != nil {
		problems = append(problems, fmt.Errorf("ROOMREC_LOG_LEVEL=%q is not one of debug, info, warn, error", get("ROOMREC_LOG_LEVEL", "")))
	}
	qn := get("ROOMREC_QUALITY", "10000")
	if c.Quality, err = strconv.Atoi(qn); err != nil || c.Quality <= 0 {
		problems = append(problems, fmt.Errorf("ROOMREC_QUALITY=%q is not a positive number (10000 is the original quality)", qn))
	}
	apiRate := get("ROOMREC_API_RATE", strconv.FormatFloat(float64(bilibili.DefaultRate), 'f', -1, 64))
	if c.APIRate, err = strconv.ParseFloat(apiRate, 64); err != nil || c.APIRate <= 0 || math.IsInf(c.APIRate, 0) || math.IsNaN(c.APIRate) {
		problems = append(problems, fmt.Errorf("ROOMREC_API_RATE=%q is not a positive number of requests a second, like 2 or 0.5", apiRate))
	}
	apiBurst := get("ROOMREC_API_BURST", strconv.Itoa(bilibili.DefaultBurst))
	if c.APIBurst, err = strconv.Atoi(apiBurst); err != nil || c.APIBurst < 1 {
		problems = append(problems, fmt.Errorf("ROOMREC_API_BURST=%q is not a whole number of requests, 1 or more", apiBurst))
	}
	minFree := get("ROOMREC_MIN_FREE_MB", "1024")
	if c.MinFreeMB, err = strconv.ParseUint(minFree, 10, 64); err != nil {
		problems = append(problems, fmt.Errorf("ROOMREC_MIN_FREE_MB=%q is not a whole number of MiB (0 turns the disk guard off)", minFree))
	}
	for _, v := range []struct {
		name string
		dst  *int
	}{{"ROOMREC_RETENTION_DAYS", &c.RetentionDays}, {"ROOMREC_RETENTION_GIB", &c.RetentionGiB}} {
		raw := get(v.name, "0")
		if *v.dst, err = strconv.Atoi(raw); err != nil || *v.dst < 0 {
			problems = append(problems, fmt.Errorf("%s=%q is not a whole number (0 keeps everything)", v.name, raw))
		}
	}
	splitSize := get("ROOMREC_SPLIT_SIZE_MB", "0")
	if c.SplitSizeMB, err = strconv.ParseInt(splitSize, 10, 64); err != nil || c.SplitSizeMB < 0 {
		problems = append(problems, fmt.Errorf("ROOMREC_SPLIT_SIZE_MB=%q is not a whole number of MiB (0 never splits by size)", splitSize))
	}
	splitEvery := get("ROOMREC_SPLIT_EVERY", "0")
	if c.SplitEvery, err = time.ParseDuration(splitEvery); err != nil || c.SplitEvery < 0 || (c.SplitEvery > 0 && c.SplitEvery < 10*time.Second) {
		problems = append(problems, fmt.Errorf("ROOMREC_SPLIT_EVERY=%q is not a duration of 10s or more, like 30m or 2h (0 never splits by time)", splitEvery))
	}
	c.FileName = get("ROOMREC_FILE_NAME", recording.DefaultFileTemplate)
	if err := recording.CheckFileTemplate(c.FileName); err != nil {
		problems = append(problems, fmt.Errorf("ROOMREC_FILE_NAME=%q: %w", c.FileName, err))
	}
	owners := get("ROOMREC_OWNERS", "")
	if c.Owners, err = bot.ParseOwners(owners); err != nil {
		problems = append(problems, fmt.Errorf("ROOMREC_OWNERS=%q: %w", owners, err))
	}
	c.Container = recording.Container(get("ROOMREC_CONTAINER", string(recording.ContainerAuto)))
	switch c.Container {
	case recording.ContainerAuto, recording.ContainerFLV, recording.ContainerMP4:
	default:
		problems = append(problems, fmt.Errorf("ROOMREC_CONTAINER=%q is not one of auto (H.264 in .flv, HEVC in .mp4), flv, mp4", c.Container))
	}
	order := get("ROOMREC_STREAM_ORDER", defaultStreamOrder)
	if c.StreamOrder, err = bilibili.ParseStreamOrder(order); err != nil {
		problems = append(problems, fmt.Errorf("ROOMREC_STREAM_ORDER=%q: %w", order, err))
	}
	zone := get("ROOMREC_TIMEZONE", "Asia/Shanghai")
	// LoadLocation reads "" and "UTC" as UTC and "Local" as the machine's
	// zone; only a real zone name is taken.
	if c.Timezone, err = time.LoadLocation(zone); err != nil || zone == "" || zone == "Local" {
		problems = append(problems, fmt.Errorf("ROOMREC_TIMEZONE=%q is not a time zone name like Asia/Shanghai, Europe/Berlin or UTC", zone))
	}
	if c.HTTPAddr != "off" {
		if _, port, err := net.SplitHostPort(c.HTTPAddr); err != nil || port == "" {
			problems = append(problems, fmt.Errorf("ROOMREC_HTTP_ADDR=%q is not host:port, like 127.0.0.1:8080 or :8080 (off turns it off)", c.HTTPAddr))
		}
	}
	switch c.Network {
	case "any", "ipv4", "ipv6":
	default:
		problems = append(problems, fmt.Errorf("ROOMREC_NETWORK=%q is not one of any, ipv4, ipv6", c.Network))
	}
	for _, u := range []struct{ name, value string }{
		{"BILIBILI_API_URL", c.BilibiliAPIURL},
		{"ROOMREC_PUBLIC_URL", c.PublicURL},
		{"DISCORD_API_URL", c.DiscordAPIURL},
	} {
		if u.value == "" {
			continue
		}
		if p, err := url.Parse(u.value); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			problems = append(problems, fmt.Errorf("%s=%q is not an http:// or https:// URL", u.name, u.value))
		}
	}
	var webhookProblems []error
	c.WebhookURLs, webhookProblems = parseWebhookURLs(get("ROOMREC_WEBHOOK_URLS", ""))
	problems = append(problems, webhookProblems...)
	if !strings.Contains(c.TelegramEndpoint, "%s") {
		problems = append(problems, fmt.Errorf("TELEGRAM_API_ENDPOINT=%q needs two %%s, for the token and the method", c.TelegramEndpoint))
	}
	return c, errors.Join(problems...)
}

// parseWebhookURLs reads ROOMREC_WEBHOOK_URLS: http:// or https:// URLs,
// comma-separated, each once. It returns one problem per bad entry.
func parseWebhookURLs(raw string) ([]string, []error) {
	var urls []string
	var problems []error
	seen := map[string]bool{}
	for _, u := range strings.Split(raw, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		// A query may hold the receiver's token: problems name the URL
		// without it.
		p, err := url.Parse(u)
		shown := u
		if err == nil {
			shown = webhook.Redact(u)
		}
		switch {
		case err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "":
			problems = append(problems, fmt.Errorf("ROOMREC_WEBHOOK_URLS: %q is not an http:// or https:// URL", shown))
		case seen[u]:
			problems = append(problems, fmt.Errorf("ROOMREC_WEBHOOK_URLS: %q is listed twice", shown))
		default:
			seen[u] = true
			urls = append(urls, u)
		}
	}
	return urls, problems
}
