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
	"runtime/pprof"
	"syscall"
	// The zone database, so ROOMREC_TIMEZONE is known in a bare container
	// with no /usr/share/zoneinfo.
	_ "time/tzdata"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := startCPUProfile(os.Getenv("ROOMREC_CPUPROFILE"))
	m := NewMain(os.Stdin, os.Stdout, os.Stderr)
	if err := m.Run(ctx, os.Args[1:]); err != nil {
		stopProfile()
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
	err := m.Close(context.Background())
	stopProfile()
	if err != nil {
		fmt.Fprintln(os.Stderr, "roomrec:", err)
		os.Exit(1)
	}
}

// startCPUProfile writes a CPU profile of the whole process to path, when
// set, until the returned function is called. It is how the load programs
// in this directory profile roomrec itself: go test -cpuprofile sees only
// the test process, not the roomrec it runs. A profile that cannot be
// started is reported and the process runs without it.
func startCPUProfile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		fmt.Fprintln(os.Stderr, "roomrec: ROOMREC_CPUPROFILE:", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
