package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"golang.org/x/time/rate"

	"roomrec/bot"
	"roomrec/storage"
)

// consoleChat is the one chat of `roomrec console`: private, so its user is
// its admin.
var consoleChat = bot.Chat{Platform: storage.Console, ID: "console", Title: "console", Private: true}

// console is `roomrec console`: the chat commands read from standard input,
// replies and alerts written to standard output, with the same core as the
// bots. It needs no bot token. At the end of input Done is closed; Close
// ends it, finishing open files.
func (m *Main) console(ctx context.Context) error {
	cfg, logger, err := m.config()
	if err != nil {
		return err
	}
	c, err := m.startCore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	c.console = true
	out := &consoleOut{w: m.Stdout}
	c.outbox.AddSender(storage.Console, out, bot.Limits{PerChat: rate.Inf, Global: rate.Inf})
	c.startChats()
	if err := c.resume(ctx); err != nil {
		c.close(context.Background())
		return err
	}
	out.println("roomrec console: type /help for the commands; end with Ctrl-D.")
	rctx := m.running(ctx, logger, c, nil, "")
	m.bots.Go(func() {
		m.readCommands(rctx, c, out)
		m.finish()
	})
	return nil
}

// readCommands answers the commands on standard input until it ends or
// ctx does.
func (m *Main) readCommands(ctx context.Context, c *core, out *consoleOut) {
	lines := make(chan string)
	go func() {
		defer close(lines)
		s := bufio.NewScanner(m.Stdin)
		for s.Scan() {
			select {
			case lines <- s.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case line, ok := <-lines:
			if !ok {
				return
			}
			if strings.TrimSpace(line) == "" {
				continue
			}
			reply := c.router.Handle(ctx, bot.Request{Chat: consoleChat, User: "console", UserID: "console", Text: line})
			out.println(reply.Text)
		}
	}
}

// consoleOut prints bot messages: a Sender for the console chat.
type consoleOut struct {
	mu   sync.Mutex
	w    io.Writer
	next int
}

func (o *consoleOut) println(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintln(o.w, s)
}

func (o *consoleOut) Send(_ context.Context, _ bot.Chat, m bot.Message) (string, error) {
	o.mu.Lock()
	o.next++
	id := o.next
	o.mu.Unlock()
	o.println(render(m))
	return fmt.Sprint(id), nil
}

// Edit prints the new text; a terminal cannot change what it printed.
func (o *consoleOut) Edit(_ context.Context, _ bot.Chat, _ string, m bot.Message) error {
	o.println(render(m))
	return nil
}

func render(m bot.Message) string {
	if m.LinkURL != "" {
		return m.Text + "\n" + m.LinkURL
	}
	return m.Text
}
