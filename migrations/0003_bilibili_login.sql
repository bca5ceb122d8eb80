-- The Bilibili account roomrec records with, logged in by QR code from a
-- chat (/login): one row at most. The cookie is what requests to
-- Bilibili's API carry; it never leaves this table but to Bilibili.
CREATE TABLE bilibili_login (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    cookies       TEXT    NOT NULL, -- the session's cookies with their expiry, as JSON
    refresh_token TEXT    NOT NULL,
    uname         TEXT    NOT NULL,
    mid           INTEGER NOT NULL,
    logged_in_at  INTEGER NOT NULL, -- unix ms
    checked_at    INTEGER NOT NULL, -- unix ms of the last refresh check or refresh
    expired       INTEGER NOT NULL DEFAULT 0 CHECK (expired IN (0, 1)) -- Bilibili answered -101
);
