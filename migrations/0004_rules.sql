-- Which broadcasts of a room count for a chat, set with /rules: only those
-- that start within a window of the day, and none whose title has one of
-- some words. The rules belong to the subscription: /stop forgets them.
-- hours_from and hours_to are minutes after midnight in ROOMREC_TIMEZONE,
-- from inclusive, to exclusive; a window with to before from crosses
-- midnight. Both NULL: any hour. skip is a JSON array of words, [] none.
ALTER TABLE subscriptions ADD COLUMN hours_from INTEGER CHECK (hours_from BETWEEN 0 AND 1439);
ALTER TABLE subscriptions ADD COLUMN hours_to INTEGER CHECK (hours_to BETWEEN 0 AND 1439);
ALTER TABLE subscriptions ADD COLUMN skip TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(skip) AND json_type(skip) = 'array');
