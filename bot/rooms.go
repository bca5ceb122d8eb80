package bot

import (
	"roomrec/bilibili"
	"roomrec/recording"
	"roomrec/storage"
)

// A room has three shapes: what Bilibili says of it (bilibili.RoomInfo),
// what the recorder needs to watch it (recording.Room), and what the
// database keeps (storage.Room). recording and storage know nothing of
// each other, so bot, which knows both, converts between them, each way
// in one place.

// recordingRoom is the room the recorder watches for a stored room.
func recordingRoom(r storage.Room) recording.Room {
	return recording.Room{RoomID: r.RoomID, ShortID: r.ShortID, UID: r.UID, Anchor: r.Anchor}
}

// storedRoom is what the database keeps of a room Bilibili described.
func storedRoom(info bilibili.RoomInfo) storage.Room {
	return storage.Room{RoomID: info.RoomID, ShortID: info.ShortID, UID: info.UID, Anchor: info.AnchorName, Title: info.Title, Cover: info.Cover}
}

// liveRoom is what the database learns of a room when a broadcast starts.
func liveRoom(e recording.LiveStarted) storage.Room {
	return storage.Room{RoomID: e.RoomID, ShortID: e.ShortID, UID: e.UID, Anchor: e.Anchor, Title: e.Title, Cover: e.Cover,
		Area: e.Area, ParentArea: e.ParentArea}
}
