package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServeCheck(t *testing.T) {
	m, out, _ := testMain(t, map[string]string{"TELEGRAM_BOT_TOKEN": "123:very-secret", "BILIBILI_COOKIE": "SESSDATA=hidden"})
	if err := m.Run(t.Context(), []string{"serve", "--check"}); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.Contains(got, "configuration OK") || !strings.Contains(got, "telegram: set") {
		t.Errorf("check output = %q", got)
	}
	if strings.Contains(got, "very-secret") || strings.Contains(got, "hidden") {
		t.Errorf("check printed a secret: %q", got)
	}

	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o644)
	bad, _, _ := testMain(t, map[string]string{"ROOMREC_DATA_DIR": filepath.Join(blocker, "data"), "ROOMREC_QUALITY": "x", "DISCORD_BOT_TOKEN": ""})
	err := bad.Run(t.Context(), []string{"serve", "--check"})
	if err == nil {
		t.Fatal("check passed a bad configuration")
	}
	for _, want := range []string{"ROOMREC_QUALITY", "not writable", "no bot token"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("check error %q lacks %q", err, want)
		}
	}
}
