// Package bot is the platform-neutral chat core: it parses commands, checks
// permissions, acts on the recorder and the store, and fans task events out
// to the chats that follow a room. It never imports a platform library.
package bot
