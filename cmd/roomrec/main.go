// Command roomrec records Bilibili live rooms and is driven from chat.
//
//	roomrec [serve]       run the configured chat bots
//	roomrec record ROOM…  record rooms with no chat at all
//	roomrec console       the chat commands on standard input
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	// The zone database, so ROOMREC_TIMEZONE is known in a bare container
	// with no /usr/share/zoneinfo.
	_ "time/tzdata"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	m := NewMain(os.Stdin, os.Stdout, os.Stderr)
	if err := m.Run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "roomrec:", err)
		os.Exit(1)
	}
	select {
	case <-ctx.Done():
	case <-m.Done():
	}
	// A second signal exits at once, for a user who does not want to wait
	// for files to be finished.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	stop()
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "roomrec: second signal, exiting now")
		os.Exit(2)
	}()
	if err := m.Close(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "roomrec:", err)
		os.Exit(1)
	}
}
