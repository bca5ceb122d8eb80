-- A chat's own retention policy, set with /archive keep. NULL is no limit
-- of the chat's own; the server's ROOMREC_RETENTION_* limits apply on top.
ALTER TABLE chats ADD COLUMN keep_days INTEGER CHECK (keep_days > 0);
ALTER TABLE chats ADD COLUMN keep_bytes INTEGER CHECK (keep_bytes > 0);
