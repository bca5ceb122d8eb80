-- roomrec's first schema. Times are unix milliseconds (UTC).

-- A chat is a Telegram group or private chat, a Discord channel, or the
-- console. platform_id is the platform's own id, as text.
CREATE TABLE chats (
    id          INTEGER PRIMARY KEY,
    platform    TEXT NOT NULL CHECK (platform IN ('telegram', 'discord', 'console')),
    platform_id TEXT NOT NULL,
    title       TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    UNIQUE (platform, platform_id)
) STRICT;

-- What roomrec last knew of a room, so /list answers without Bilibili.
CREATE TABLE rooms (
    room_id    INTEGER PRIMARY KEY, -- the real id
    short_id   INTEGER NOT NULL DEFAULT 0,
    anchor     TEXT NOT NULL DEFAULT '',
    title      TEXT NOT NULL DEFAULT '',
    cover      TEXT NOT NULL DEFAULT '',
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE subscriptions (
    chat_id    INTEGER NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    room_id    INTEGER NOT NULL REFERENCES rooms (room_id),
    mode       TEXT NOT NULL CHECK (mode IN ('record', 'watch')),
    added_by   TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (chat_id, room_id)
) STRICT;
CREATE INDEX subscriptions_by_room ON subscriptions (room_id);

-- One row per broadcast; live_start identifies it.
CREATE TABLE live_sessions (
    id         INTEGER PRIMARY KEY,
    room_id    INTEGER NOT NULL REFERENCES rooms (room_id),
    live_start INTEGER NOT NULL,
    live_key   TEXT NOT NULL DEFAULT '',
    title      TEXT NOT NULL DEFAULT '',
    ended_at   INTEGER,
    UNIQUE (room_id, live_start)
) STRICT;

-- Which chats were alerted for a broadcast, so each is alerted once, and
-- with which message, so the alert can be edited when it ends.
CREATE TABLE alerts (
    session_id INTEGER NOT NULL REFERENCES live_sessions (id) ON DELETE CASCADE,
    chat_id    INTEGER NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    message_id TEXT NOT NULL DEFAULT '',
    sent_at    INTEGER NOT NULL,
    PRIMARY KEY (session_id, chat_id)
) STRICT;

-- One row per video file. path is relative to the recordings directory.
CREATE TABLE recordings (
    id           INTEGER PRIMARY KEY,
    session_id   INTEGER REFERENCES live_sessions (id),
    room_id      INTEGER NOT NULL REFERENCES rooms (room_id),
    path         TEXT NOT NULL UNIQUE,
    danmaku_path TEXT NOT NULL DEFAULT '',
    title        TEXT NOT NULL DEFAULT '',
    size         INTEGER NOT NULL DEFAULT 0,
    duration_ms  INTEGER NOT NULL DEFAULT 0,
    started_at   INTEGER NOT NULL,
    ended_at     INTEGER,
    status       TEXT NOT NULL CHECK (status IN ('writing', 'complete', 'interrupted', 'deleted'))
) STRICT;
CREATE INDEX recordings_by_status ON recordings (status);

-- The archive: which chats keep which recordings.
CREATE TABLE archive (
    chat_id      INTEGER NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    recording_id INTEGER NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    started_at   INTEGER NOT NULL, -- copied from the recording, for the newest-first listing
    room_id      INTEGER NOT NULL,
    PRIMARY KEY (chat_id, recording_id)
) STRICT;
CREATE INDEX archive_listing ON archive (chat_id, started_at DESC, recording_id DESC);
CREATE INDEX archive_by_room ON archive (chat_id, room_id, started_at DESC);
CREATE INDEX archive_by_recording ON archive (recording_id);
