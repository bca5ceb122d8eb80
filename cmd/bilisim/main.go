// Command bilisim serves the fake Bilibili from bilibili/bilibilitest on a
// port, for demos and manual tests of roomrec. Run it, point roomrec at it
// with BILIBILI_API_URL, and drive the rooms with curl (it prints how).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bilisim:", err)
		os.Exit(1)
	}
}
