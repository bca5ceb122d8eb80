package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// check is `roomrec serve --check`: it validates the configuration the way
// serve would, without starting anything or contacting anyone, and says
// what it found. Tokens are reported as set or not, never shown.
func (m *Main) check() error {
	cfg, err := LoadConfig(m.Lookup, m.DotenvPath)
	var problems []error
	if err != nil {
		problems = append(problems, err)
	}
	if cfg.DataDir != "" {
		if err := writable(cfg.RecordingsDir()); err != nil {
			problems = append(problems, fmt.Errorf("ROOMREC_DATA_DIR=%s is not writable: %v", cfg.DataDir, err))
		}
	}
	if cfg.TelegramToken == "" && cfg.DiscordToken == "" {
		problems = append(problems, errors.New("no bot token: set TELEGRAM_BOT_TOKEN and/or DISCORD_BOT_TOKEN (roomrec console needs none)"))
	}
	if len(problems) > 0 {
		return fmt.Errorf("configuration:\n%w", errors.Join(problems...))
	}
	set := func(v string) string {
		if v == "" {
			return "not set"
		}
		return "set"
	}
	fmt.Fprintf(m.Stdout, "configuration OK\n  data: %s\n  http: %s\n  telegram: %s\n  discord: %s\n  bilibili: %s (cookie %s), quality %d, network %s\n",
		cfg.DataDir, cfg.HTTPAddr, set(cfg.TelegramToken), set(cfg.DiscordToken), orDefault(cfg.BilibiliAPIURL, "bilibili.com"), set(cfg.BilibiliCookie), cfg.Quality, cfg.Network)
	return nil
}

// writable makes dir if needed and proves a file can be created in it.
func writable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".roomrec-check-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(filepath.Clean(name))
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
