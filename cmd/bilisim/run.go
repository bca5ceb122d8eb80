package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"

	"roomrec/bilibili/bilibilitest"
)

// demoRooms are served when no -room flag is given: a live room with a short
// id (Bilibili's real 5440, short 1), an offline one, another live one, and
// an offline one that Bilibili offers as HLS only once it goes live.
var demoRooms = []bilibilitest.RoomConfig{
	{RoomID: 5440, ShortID: 1, UID: 9617619, Anchor: "演示主播", Title: "模拟直播：主机游戏", AreaName: "主机游戏", ParentAreaName: "单机游戏", Live: true},
	{RoomID: 21452505, UID: 1437582453, Anchor: "离线主播", Title: "还没开播"},
	{RoomID: 7734200, ShortID: 3, UID: 50329118, Anchor: "电台主播", Title: "深夜电台", Live: true},
	{RoomID: 22637261, UID: 703007996, Anchor: "HLS主播", Title: "只有 HLS"},
}

// demoOffers are the demo rooms' offers other than the default.
var demoOffers = map[int64]bilibilitest.Offer{22637261: bilibilitest.OfferHLSOnly}

// demoAccount is the account a QR login confirms as by default.
var demoAccount = bilibilitest.Account{Mid: 10086, Uname: "演示账号"}

// run serves the simulator until ctx ends. args are the command-line flags
// without the program name; the banner goes to stdout and logs to stderr.
// It returns an error for bad flags or a port it cannot listen on.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bilisim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	speed := fs.Float64("speed", 1, "stream pacing: 1 is real time, 4 is four times faster")
	verbose := fs.Bool("v", false, "log every connection at debug level")
	guestQn := fs.Int("guest-qn", 150, "the best qn play info serves without a login, as on Bilibili (0: every quality to anyone)")
	var rooms []bilibilitest.RoomConfig
	fs.Func("room", "a room to serve, `REAL[:SHORT][:live]` (repeatable; default: demo rooms)", func(v string) error {
		c, err := parseRoom(v)
		rooms = append(rooms, c)
		return err
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *speed <= 0 {
		return fmt.Errorf("-speed %v: want a positive number", *speed)
	}
	if *guestQn < 0 {
		return fmt.Errorf("-guest-qn %d: want a qn, or 0 for no cap", *guestQn)
	}
	offers := map[int64]bilibilitest.Offer{}
	if len(rooms) == 0 {
		rooms, offers = demoRooms, demoOffers
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	sim, err := bilibilitest.NewServer(bilibilitest.Config{
		Addr:       *addr,
		Speed:      *speed,
		Logger:     slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
		GuestMaxQn: *guestQn,
	})
	if err != nil {
		return err
	}
	defer sim.Close()
	for _, c := range rooms {
		room := sim.AddRoom(c)
		if o, ok := offers[c.RoomID]; ok {
			room.SetOffer(o)
		}
	}
	sim.AddAccount(demoAccount)
	printBanner(stdout, sim.URL(), *speed, *guestQn, rooms, offers)
	<-ctx.Done()
	return nil
}

// parseRoom parses a -room value such as "5440:1:live" or "21452505".
func parseRoom(v string) (bilibilitest.RoomConfig, error) {
	var c bilibilitest.RoomConfig
	parts := strings.Split(v, ":")
	if parts[len(parts)-1] == "live" {
		c.Live = true
		parts = parts[:len(parts)-1]
	}
	if len(parts) < 1 || len(parts) > 2 {
		return c, fmt.Errorf("room %q: want REAL[:SHORT][:live]", v)
	}
	ids := make([]int64, len(parts))
	for i, p := range parts {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil || n <= 0 {
			return c, fmt.Errorf("room %q: %q is not a room number", v, p)
		}
		ids[i] = n
	}
	c.RoomID = ids[0]
	if len(ids) == 2 {
		c.ShortID = ids[1]
	}
	if c.ShortID == c.RoomID {
		return c, errors.New("room " + v + ": the short id must differ from the real one")
	}
	return c, nil
}

// printBanner tells a person how to point roomrec at the simulator and how
// to drive it.
func printBanner(w io.Writer, url string, speed float64, guestQn int, rooms []bilibilitest.RoomConfig, offers map[int64]bilibilitest.Offer) {
	id := rooms[0].RoomID
	fmt.Fprintf(w, "bilisim: fake Bilibili on %s (stream speed %gx)\n\nRooms:\n", url, speed)
	for _, c := range rooms {
		state := "offline"
		if c.Live {
			state = "live"
		}
		short := ""
		if c.ShortID != 0 {
			short = fmt.Sprintf(" (short %d)", c.ShortID)
		}
		offer := bilibilitest.OfferDefault
		if o, ok := offers[c.RoomID]; ok {
			offer = o
		}
		fmt.Fprintf(w, "  %d%s %s, offers %s\n", c.RoomID, short, state, offer)
	}
	fmt.Fprintf(w, `
Point roomrec at it:
  BILIBILI_API_URL=%[1]s roomrec record %[2]d

Drive it (every room action: live end endfirst cut stall notfound title
danmaku sc gift guard watched resolution jump hlsonly offer expire lifetime
playlist404 playliststall stale corrupt endlist):
  curl %[1]s/_sim/rooms
  curl -X POST %[1]s/_sim/rooms/%[2]d/live
  curl -X POST '%[1]s/_sim/rooms/%[2]d/danmaku?text=hello'
  curl -X POST '%[1]s/_sim/rooms/%[2]d/title?title=new+title'
  curl -X POST %[1]s/_sim/rooms/%[2]d/cut
  curl -X POST '%[1]s/_sim/rooms/%[2]d/stall?ms=5000'
  curl -X POST %[1]s/_sim/rooms/%[2]d/resolution
  curl -X POST '%[1]s/_sim/rooms/%[2]d/jump?ms=30000'
  curl -X POST %[1]s/_sim/rooms/%[2]d/end
  curl -X POST '%[1]s/_sim/faults/risk?path=/xlive/web-room/v1/index/getDanmuInfo&n=3'
  curl -X POST '%[1]s/_sim/rooms/%[2]d/hlsonly'      (?off=1 brings FLV back)

HLS and HEVC (play info lists what the room offers; every stream is served):
  curl -X POST '%[1]s/_sim/rooms/%[2]d/offer?streams=hls'   (or default flv hevc all none, or flv/hevc,fmp4/avc…)
  curl -X POST %[1]s/_sim/rooms/%[2]d/expire              (URLs handed out so far answer 403)
  curl -X POST '%[1]s/_sim/rooms/%[2]d/lifetime?ms=10000'   (new URLs expire after 10 s)
  curl -X POST '%[1]s/_sim/rooms/%[2]d/playlist404?ms=5000'
  curl -X POST '%[1]s/_sim/rooms/%[2]d/playliststall?ms=5000'
  curl -X POST '%[1]s/_sim/rooms/%[2]d/stale?n=1'          (next playlist goes back a segment)
  curl -X POST '%[1]s/_sim/rooms/%[2]d/corrupt?n=1'        (next segment fails its CRC)
  curl -X POST %[1]s/_sim/rooms/%[2]d/endlist             (?off=1: ended playlists answer 404)
  (resolution also changes the H.264 fMP4 init; cut also breaks the next segment)
  curl -X POST '%[1]s/_sim/faults/412?n=1'
  curl -X POST '%[1]s/_sim/faults/changed?path=/room/v1/Room/room_init&n=1'
  curl -X POST -d '{"RoomID":123456,"ShortID":0,"Title":"new room","Live":true}' %[1]s/_sim/rooms
`, url, id)
	quality := "every quality to anyone"
	if guestQn > 0 {
		quality = fmt.Sprintf("at most qn %d without a login, up to 10000 with one", guestQn)
	}
	fmt.Fprintf(w, `
Log in (account %[2]d %[3]s; play info serves %[4]s). Start a QR login
from roomrec, then play the phone:
  curl %[1]s/_sim/qr                            (keys waiting for a scan)
  curl -X POST %[1]s/_sim/qr/latest/scan
  curl -X POST '%[1]s/_sim/qr/latest/confirm?mid=%[2]d'
  curl -X POST %[1]s/_sim/qr/latest/expire
  curl %[1]s/_sim/accounts
  curl -X POST %[1]s/_sim/accounts/%[2]d/refreshdue    (cookie/info says refresh)
  curl -X POST %[1]s/_sim/accounts/%[2]d/logout        (its cookies answer -101)
  curl -X POST -d '{"Mid":123,"Uname":"another"}' %[1]s/_sim/accounts
`, url, demoAccount.Mid, demoAccount.Uname, quality)
}
