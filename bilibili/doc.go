// Package bilibili is a client for the parts of Bilibili's HTTP API that a
// live recorder needs: resolving rooms, room info, play URLs and the danmaku
// server list. It speaks to Bilibili as the website does (browser headers,
// WBI signatures, a buvid3 cookie) and turns Bilibili's error codes into
// typed errors that callers can branch on.
//
// It knows nothing about tasks, chats or files.
package bilibili
