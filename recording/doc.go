// Package recording owns the life of a recorded room: a Task per room that
// watches it, records every broadcast to disk and reports what happens as
// events, and the Manager that keeps one Task per real room id.
//
// It knows nothing about chats or SQL.
package recording
