// Package danmaku speaks Bilibili's live danmaku websocket: the packet codec
// (16-byte headers, zlib and brotli batches), a client that authenticates,
// heartbeats and reports a dead connection, and typed events for the
// messages a recorder cares about. It decides nothing about what to do with
// them.
package danmaku
