// Package migrations holds roomrec's database schema as ordered
// NNNN_name.sql files, embedded so the binary carries its own schema.
package migrations

import "embed"

// FS holds every migration file, applied in name order by package storage.
//
//go:embed *.sql
var FS embed.FS
