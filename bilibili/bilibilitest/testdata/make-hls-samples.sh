#!/usr/bin/env bash
# Regenerates the simulator's HLS samples: a 4 s loop of video + AAC, one
# keyframe a second (closed GOPs), cut into 1 s HLS segments:
#
#   hls/avc_a/     H.264 320x180, fMP4: init.mp4 and 0.m4s .. 3.m4s
#   hls/avc_b/     H.264 480x270, fMP4 (the "resolution change" init)
#   hls/hevc_a/    HEVC (libx265) 320x180, fMP4
#   hls/avc_a_ts/  H.264 320x180, MPEG-TS: 0.ts .. 3.ts
#   hls/hevc_a_ts/ HEVC 320x180, MPEG-TS
#
# Every sample carries the same AAC track (encoded once), so the simulator can
# switch samples at any segment without the audio going back or jumping.
# The audio is 32 kHz and exactly 125 AAC frames (128000 samples = 4.000 s),
# which is what lets the loop repeat forever without audio drifting from
# video: at 44.1 or 48 kHz no loop of a few seconds holds a whole number of
# 1024-sample frames.
#
# Bilibili's fMP4 segments hold several moof+mdat pairs a second (four, as
# measured on the real CDN). ffmpeg's HLS muxer writes one fragment per
# segment, so the fMP4 samples are muxed as 0.25 s segments split by time
# and every four are concatenated into one 1 s segment; the styp and sidx
# boxes ffmpeg puts before each fragment are dropped by the simulator, which
# serves moof and mdat boxes only, as Bilibili does.
#
# Needs ffmpeg with libx264 and libx265; the outputs are committed, so tests
# do not.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ff() { ffmpeg -hide_banner -loglevel error -y "$@"; }

# 126976 samples in gives 125 frames out: the encoder adds one frame of
# priming.
ff -f lavfi -i "sine=frequency=880:sample_rate=32000" -af atrim=end_sample=126976 \
  -c:a aac -b:a 32k -ac 2 "$tmp/audio.m4a"

video() { # name size codec-args...
  local name=$1 size=$2
  shift 2
  ff -f lavfi -i "testsrc2=size=$size:rate=30" -i "$tmp/audio.m4a" -t 4 -map 0:v -map 1:a \
    "$@" -b:v 120k -pix_fmt yuv420p -c:a copy "$tmp/$name.mp4"
}
x264=(-c:v libx264 -profile:v main -preset veryfast -g 30 -keyint_min 30 -sc_threshold 0)
x265=(-c:v libx265 -preset veryfast -tag:v hvc1
  -x265-params "keyint=30:min-keyint=30:scenecut=0:open-gop=0:log-level=error")
video avc_a 320x180 "${x264[@]}"
video avc_b 480x270 "${x264[@]}"
video hevc_a 320x180 "${x265[@]}"

fmp4() { # name
  local parts="$tmp/$1-parts"
  mkdir -p "$parts" "hls/$1"
  ff -i "$tmp/$1.mp4" -c copy -f hls -hls_segment_type fmp4 -hls_time 0.25 -hls_flags split_by_time \
    -hls_list_size 0 -hls_playlist_type vod -hls_fmp4_init_filename init.mp4 \
    -hls_segment_filename "$parts/%d.m4s" "$parts/index.m3u8"
  cp "$parts/init.mp4" "hls/$1/init.mp4"
  for s in 0 1 2 3; do
    cat "$parts/$((4 * s)).m4s" "$parts/$((4 * s + 1)).m4s" "$parts/$((4 * s + 2)).m4s" \
      "$parts/$((4 * s + 3)).m4s" >"hls/$1/$s.m4s"
  done
  [ ! -e "$parts/16.m4s" ] || { echo "$1: more than 16 fragments" >&2; exit 1; }
}
ts() { # name
  mkdir -p "hls/$1_ts"
  ff -i "$tmp/$1.mp4" -c copy -f hls -hls_segment_type mpegts -hls_time 1 -hls_list_size 0 \
    -hls_playlist_type vod -hls_segment_filename "hls/$1_ts/%d.ts" "$tmp/$1-ts.m3u8"
  [ ! -e "hls/$1_ts/4.ts" ] || { echo "$1: more than 4 TS segments" >&2; exit 1; }
}
rm -rf hls
fmp4 avc_a
fmp4 avc_b
fmp4 hevc_a
ts avc_a
ts hevc_a
