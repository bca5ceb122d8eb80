#!/bin/sh
# make-fixtures.sh regenerates the fMP4 fixtures of package mp4 with ffmpeg,
# so the demuxer and writer are checked against an independent muxer, never
# only against each other. Run it from this directory; it needs ffmpeg with
# libx264, libx265 and the native AAC encoder (made with ffmpeg 5.1).
#
#   h264/  HLS fMP4: init.mp4 + 1 s segments, H.264 High with 2 B-frames, AAC 48 kHz
#   hevc/  the same with HEVC (hvc1) from libx265
#   separate.mp4  one fragmented MP4 whose tracks are in separate moofs
#                 (movflags separate_moof), to exercise one traf per moof
set -eu

src="-f lavfi -i testsrc2=size=320x180:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 -t 4"
common="-g 30 -keyint_min 30 -sc_threshold 0 -c:a aac -b:a 48k -ac 1 -map_metadata -1 -fflags +bitexact"
hls="-f hls -hls_segment_type fmp4 -hls_time 1 -hls_playlist_type vod -hls_fmp4_init_filename init.mp4"

rm -rf h264 hevc separate.mp4
mkdir h264 hevc

ffmpeg -nostdin -loglevel error $src \
	-c:v libx264 -preset veryfast -crf 38 -bf 2 -pix_fmt yuv420p $common \
	$hls -hls_segment_filename 'h264/seg%d.m4s' h264/index.m3u8

ffmpeg -nostdin -loglevel error $src \
	-c:v libx265 -preset veryfast -crf 38 -tag:v hvc1 -pix_fmt yuv420p \
	-x265-params keyint=30:min-keyint=30:scenecut=0:bframes=2:log-level=error $common \
	$hls -hls_segment_filename 'hevc/seg%d.m4s' hevc/index.m3u8

ffmpeg -nostdin -loglevel error $src -t 2 \
	-c:v libx264 -preset veryfast -crf 38 -bf 2 -pix_fmt yuv420p $common \
	-movflags +frag_keyframe+empty_moov+separate_moof+default_base_moof separate.mp4
