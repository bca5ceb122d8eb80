package redact

import (
	"context"
	"encoding"
	"fmt"
	"log/slog"
)

// Handler is a slog.Handler that redacts every record before passing it on:
// the message, string values, errors (as err.Error()) and any other value
// whose printed form would carry a URL or a secret. Redacting here, rather
// than at each call site, means an error wrapped three packages down (a
// url.Error quoting a signed stream URL, or a Bot API URL with the token in
// its path) cannot reach the log intact.
type Handler struct {
	next    slog.Handler
	secrets *Secrets
}

// NewHandler returns a Handler that writes to next, replacing the given
// secret values (bot tokens, cookie values) and cutting URLs as Text does.
func NewHandler(next slog.Handler, secrets *Secrets) *Handler {
	return &Handler{next: next, secrets: secrets}
}

// Enabled reports whether the next handler wants records of this level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle passes a redacted copy of r to the next handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, h.secrets.Text(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

// WithAttrs redacts attributes given once for a logger, such as a
// component's.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = h.attr(a)
	}
	return &Handler{next: h.next.WithAttrs(clean), secrets: h.secrets}
}

// WithGroup returns a Handler whose next handler opens the group.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), secrets: h.secrets}
}

func (h *Handler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.secrets.Text(v.String()))
	case slog.KindGroup:
		group := v.Group()
		clean := make([]slog.Attr, len(group))
		for i, g := range group {
			clean[i] = h.attr(g)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(clean...)}
	case slog.KindInt64, slog.KindUint64:
		// A number can be a secret too: the DedeUserID cookie is the
		// account's mid, which the Bilibili client logs as uid.
		text := v.String()
		if clean := h.secrets.Text(text); clean != text {
			return slog.String(a.Key, clean)
		}
	case slog.KindAny:
		// Print the value as a handler would; only if that text needs
		// redacting is the value replaced by the redacted text, so other
		// values keep their type for the next handler.
		text := printed(v.Any())
		if clean := h.secrets.Text(text); clean != text {
			return slog.String(a.Key, clean)
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// printed is how slog's handlers show a value of kind Any. A value whose
// method panics (a nil pointer error) prints as nothing; the next handler
// reports the panic as it would have.
func printed(v any) (s string) {
	defer func() {
		if recover() != nil {
			s = ""
		}
	}()
	switch v := v.(type) {
	case error:
		return v.Error()
	case encoding.TextMarshaler:
		if b, err := v.MarshalText(); err == nil {
			return string(b)
		}
	case fmt.Stringer:
		return v.String()
	}
	return fmt.Sprintf("%+v", v)
}

var _ slog.Handler = (*Handler)(nil)
