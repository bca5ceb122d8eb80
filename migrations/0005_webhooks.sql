-- Webhooks (BililiveRecorder webhook v2): an outbox of events, each queued
-- in the transaction that records its fact, read in order by every URL
-- from a cursor of its own.

-- The room's area, which every webhook event names.
ALTER TABLE rooms ADD COLUMN area TEXT NOT NULL DEFAULT '';
ALTER TABLE rooms ADD COLUMN parent_area TEXT NOT NULL DEFAULT '';

-- A recording session: one download of a broadcast, from the first stream
-- picked to the end of the download (the room ended, the download failed
-- and will start again as a new session, no chat records the room any
-- more, or roomrec stopped). uuid is the webhook SessionId.
CREATE TABLE recording_sessions (
    id         INTEGER PRIMARY KEY,
    uuid       TEXT    NOT NULL UNIQUE,
    session_id INTEGER NOT NULL REFERENCES live_sessions (id) ON DELETE CASCADE,
    room_id    INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER
) STRICT;
CREATE INDEX recording_sessions_open ON recording_sessions (room_id) WHERE ended_at IS NULL;

-- The recording session a file was written in (NULL for files from before).
ALTER TABLE recordings ADD COLUMN recording_session_id INTEGER REFERENCES recording_sessions (id);

-- Every event, once. seq is the order of delivery; AUTOINCREMENT so a seq
-- is never used twice, even after the delivered events are deleted.
CREATE TABLE webhook_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   TEXT    NOT NULL UNIQUE, -- EventId
    event_type TEXT    NOT NULL,
    room_id    INTEGER NOT NULL,
    queued_at  INTEGER NOT NULL, -- unix ms
    body       BLOB    NOT NULL  -- the JSON posted, byte for byte on every attempt
) STRICT;

-- How far each configured URL has got. An event is deleted once every URL
-- is past it.
CREATE TABLE webhook_cursors (
    url           TEXT    PRIMARY KEY,
    delivered_seq INTEGER NOT NULL, -- every event up to here is confirmed or given up
    failing_since INTEGER,          -- unix ms of the first failure since the last delivery
    last_error    TEXT    NOT NULL DEFAULT ''
) STRICT;
