// Package storage keeps roomrec's state in SQLite: chats, subscriptions,
// rooms, live sessions and the shared archive of recordings.
package storage
