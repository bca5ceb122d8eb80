// Package redact keeps secrets out of text that people read: logs and chat
// messages. It owns the one rule for URLs (a query string is cut, because
// Bilibili signs stream URLs there and names the account; a Telegram token
// in a Bot API path is cut) and replaces values the caller names as secret,
// such as cookie values and bot tokens.
package redact

import (
	"cmp"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// Cut is what stands in for whatever was removed.
const Cut = "…"

// urlPattern finds http, https, ws and wss URLs in free text, up to the
// first space or quote: url.Error quotes its URL, a log line ends it with
// a space.
var urlPattern = regexp.MustCompile(`(?i)\b(?:https?|wss?)://[^\s"'<>` + "`" + `]+`)

// botToken is a Telegram token as the Bot API path carries it:
// /bot<id>:<secret>, the colon perhaps percent-encoded.
var botToken = regexp.MustCompile(`(?i)/bot\d+(?::|%3A)[^/?#]*`)

// Text returns s with every http(s) and ws(s) URL in it cut down to scheme,
// host and path: a query or fragment becomes "?…", user info "…@", and a
// Telegram token in a /bot<token>/ path segment "/bot…".
func Text(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return urlPattern.ReplaceAllStringFunc(s, cutURL)
}

func cutURL(u string) string {
	// Punctuation closing a sentence or a bracket is not part of the URL.
	trail := len(u)
	for trail > 0 && strings.IndexByte(".,;:!)]}", u[trail-1]) >= 0 {
		trail--
	}
	u, rest := u[:trail], u[trail:]
	scheme, after, _ := strings.Cut(u, "://")
	cut := false
	if i := strings.IndexAny(after, "?#"); i >= 0 {
		after, cut = after[:i], true
	}
	host, path, _ := strings.Cut(after, "/")
	if i := strings.LastIndexByte(host, '@'); i >= 0 {
		host = Cut + host[i:]
	}
	out := scheme + "://" + host
	if path != "" || strings.Contains(after, "/") {
		out += botToken.ReplaceAllString("/"+path, "/bot"+Cut)
	}
	if cut {
		out += "?" + Cut
	}
	return out + rest
}

// Secrets replaces known secret values wherever they appear in text. More
// can be added while it is in use (a login made from a chat brings new
// cookies); it is safe for concurrent use. A nil *Secrets replaces nothing.
type Secrets struct {
	mu     sync.RWMutex
	values []string
	r      *strings.Replacer
}

// NewSecrets returns Secrets for the given values; empty ones are ignored.
// A longer value is replaced before a shorter one it contains.
func NewSecrets(values ...string) *Secrets {
	s := &Secrets{}
	s.Add(values...)
	return s
}

// Add makes Secrets replace values too; empty ones are ignored.
func (s *Secrets) Add(values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range values {
		if v != "" && !slices.Contains(s.values, v) {
			s.values = append(s.values, v)
		}
	}
	if len(s.values) == 0 {
		return
	}
	// strings.Replacer tries its pairs in order at each position.
	kept := slices.Clone(s.values)
	slices.SortStableFunc(kept, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	pairs := make([]string, 0, 2*len(kept))
	for _, v := range kept {
		pairs = append(pairs, v, "[redacted]")
	}
	s.r = strings.NewReplacer(pairs...)
}

// Text returns s with every secret value replaced and every URL cut as the
// package-level Text does.
func (s *Secrets) Text(text string) string {
	if s != nil {
		s.mu.RLock()
		r := s.r
		s.mu.RUnlock()
		if r != nil {
			text = r.Replace(text)
		}
	}
	return Text(text)
}
