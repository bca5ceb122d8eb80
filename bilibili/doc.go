// Package bilibili is a client for the parts of Bilibili's HTTP API that a
// live recorder needs: resolving rooms, room info, play URLs and the danmaku
// server list, and the web login that unlocks full quality (QR login, nav,
// and the cookie refresh that keeps a login alive). It speaks to Bilibili as
// the website does (browser headers, WBI signatures, a buvid3 cookie) and
// turns Bilibili's error codes into typed errors that callers can branch on.
// Login cookies and tokens go only to Bilibili's API hosts and never into
// an error or a log line.
//
// It knows nothing about tasks, chats or files.
package bilibili
