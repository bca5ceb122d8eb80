#!/usr/bin/env bash
# Regenerates the MPEG-TS HLS segments the mpegts tests read, with ffmpeg
# alone (never with roomrec), so the demuxer is checked against an
# independent muxer:
#
#   h264_0.ts .. h264_2.ts    H.264 High (x264, B-frames, a keyframe every
#                             30 frames at 30 fps) + AAC-LC 48 kHz stereo,
#                             cut by ffmpeg's HLS muxer into 1 s segments
#   hevc_0.ts .. hevc_2.ts    the same with HEVC (x265, closed GOPs, B-frames)
#   noparams_1.ts,            h264_1.ts and h264_2.ts with every SPS and PPS
#   noparams_2.ts             NAL unit removed: a stream whose parameter sets
#                             come only in its first segment
#   tiny_h264.ts,             0.2 s of 64x36 video (a keyframe every 4
#   tiny_hevc.ts              frames, B-frames) and mono AAC: small seeds
#                             for the fuzz target
#
# Each segment is a whole TS file with its own PAT and PMT and continuity
# counters starting again, as Bilibili's and the simulator's are. ffmpeg's
# HLS muxer writes SPS/PPS before every IDR (x264 repeats its headers), so
# the "first segment only" stream is made afterwards: the filter_units
# bitstream filter drops NAL types 7 and 8 from the packets and from the
# extradata (so the TS muxer has none to re-insert), and -copyts with no mux
# delay keeps the original timestamps, so noparams_1 follows h264_0 exactly.
# (x264's repeat-headers=0 is no way to get this: without a global header
# x264 then writes no SPS/PPS at all.)
#
# Needs ffmpeg with libx264 and libx265; the outputs are committed, so the
# tests do not.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ff() { ffmpeg -hide_banner -loglevel error -y "$@"; }

segments() { # name video-codec-args...
  local name=$1
  shift
  ff -f lavfi -i "testsrc2=size=256x144:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -t 3 "$@" -pix_fmt yuv420p -b:v 100k -c:a aac -b:a 32k -ac 2 \
    -f hls -hls_time 1 -hls_list_size 0 -hls_segment_type mpegts -hls_playlist_type vod \
    -hls_segment_filename "${name}_%d.ts" "$tmp/$name.m3u8"
  [ -e "${name}_2.ts" ] && [ ! -e "${name}_3.ts" ] || { echo "$name: not 3 segments" >&2; exit 1; }
}
rm -f ./*.ts
segments h264 -c:v libx264 -preset veryfast -profile:v high -g 30 -keyint_min 30 -sc_threshold 0 -bf 2
segments hevc -c:v libx265 -preset veryfast \
  -x265-params "keyint=30:min-keyint=30:scenecut=0:open-gop=0:bframes=2:log-level=error"
tiny() { # name video-codec-args...
  local name=$1
  shift
  ff -f lavfi -i "testsrc2=size=64x36:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -t 0.2 "$@" -pix_fmt yuv420p -c:a aac -b:a 16k -ac 1 -f mpegts "$name.ts"
}
tiny tiny_h264 -c:v libx264 -preset veryfast -g 4 -bf 2
tiny tiny_hevc -c:v libx265 -preset veryfast -x265-params "keyint=4:bframes=2:log-level=error"
for i in 1 2; do
  ff -copyts -i "h264_$i.ts" -map 0 -c copy -bsf:v "filter_units=remove_types=7|8" \
    -muxdelay 0 -muxpreload 0 -f mpegts "noparams_$i.ts"
done
