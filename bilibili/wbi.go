package bilibili

import (
	"crypto/md5"
	"encoding/hex"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// mixinTable is the permutation the website applies to img_key+sub_key to
// build the WBI mixin key.
var mixinTable = [...]int{
	46, 47, 18, 2, 53, 8, 23, 32, 15, 50, 10, 31, 58, 3, 45, 35,
	27, 43, 5, 49, 33, 9, 42, 19, 29, 28, 14, 39, 12, 38, 41, 13,
	37, 48, 7, 16, 24, 55, 40, 61, 26, 17, 0, 1, 60, 51, 30, 4,
	22, 25, 54, 21, 56, 59, 6, 63, 57, 62, 11, 36, 20, 34, 44, 52,
}

// WBIMixinKey returns the 32-character signing key built from the img and
// sub keys that /x/web-interface/nav hands out. Keys of the wrong length give
// a key that Bilibili will reject, not a panic.
func WBIMixinKey(imgKey, subKey string) string {
	raw := imgKey + subKey
	var b strings.Builder
	for _, i := range mixinTable {
		if i < len(raw) {
			b.WriteByte(raw[i])
		}
		if b.Len() == 32 {
			break
		}
	}
	return b.String()
}

// WBIKeyFromURL returns the key in a wbi_img URL: the file name without its
// extension.
func WBIKeyFromURL(u string) string {
	name := u[strings.LastIndexByte(u, '/')+1:]
	if dot := strings.IndexByte(name, '.'); dot >= 0 {
		name = name[:dot]
	}
	return name
}

// SignWBI returns params with wts (the signing time) and w_rid (the
// signature) added, encoded as the website encodes them. params is not
// modified.
func SignWBI(params url.Values, mixinKey string, now time.Time) string {
	query := wbiQuery(params, now.Unix())
	sum := md5.Sum([]byte(query + mixinKey))
	return query + "&w_rid=" + hex.EncodeToString(sum[:])
}

// VerifyWBI reports whether a query carries a w_rid that matches its other
// parameters under mixinKey. The simulator uses it to answer -352 as
// Bilibili does.
func VerifyWBI(query url.Values, mixinKey string) bool {
	rid := query.Get("w_rid")
	wts, err := strconv.ParseInt(query.Get("wts"), 10, 64)
	if rid == "" || err != nil {
		return false
	}
	rest := url.Values{}
	for k, v := range query {
		if k != "w_rid" && k != "wts" {
			rest[k] = v
		}
	}
	sum := md5.Sum([]byte(wbiQuery(rest, wts) + mixinKey))
	return hex.EncodeToString(sum[:]) == rid
}

// wbiQuery sorts the parameters, drops the characters the website strips
// from values and escapes spaces as %20, as encodeURIComponent does.
func wbiQuery(params url.Values, wts int64) string {
	keys := make([]string, 0, len(params)+1)
	for k := range params {
		keys = append(keys, k)
	}
	keys = append(keys, "wts")
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		v := strconv.FormatInt(wts, 10)
		if k != "wts" {
			v = strings.Map(func(r rune) rune {
				if strings.ContainsRune("!'()*", r) {
					return -1
				}
				return r
			}, params.Get(k))
		}
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(escapeComponent(k))
		b.WriteByte('=')
		b.WriteString(escapeComponent(v))
	}
	return b.String()
}

func escapeComponent(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}
