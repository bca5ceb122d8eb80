-- The anchor's uid of each room: what the bulk room check
-- (get_status_info_by_uids) asks by, so a restart learns who is live in a
-- few calls instead of one per room. 0 until known; a room stored before
-- this is checked on its own until its uid is learned.
ALTER TABLE rooms ADD COLUMN uid INTEGER NOT NULL DEFAULT 0;
