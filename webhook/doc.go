// Package webhook delivers roomrec's events to the URLs in
// ROOMREC_WEBHOOK_URLS, in the body and with the events of
// BililiveRecorder's webhook v2, so the tools written for it work unchanged.
//
// It owns the shape of an event (Event and its data) and delivery: the
// HTTP client, the signature, the backoff and one worker per URL. The
// events themselves are queued by package storage, in the transaction
// that records each fact, and are read and marked through Outbox, so a
// restart resends what no receiver confirmed with its EventId unchanged.
package webhook
