#!/usr/bin/env bash
# Regenerates the simulator's stream samples: 6 s of H.264 + AAC in FLV, one
# keyframe a second, at two resolutions so a "resolution change" can switch
# between them. Needs ffmpeg; the outputs are committed, so tests do not.
set -euo pipefail
cd "$(dirname "$0")"
gen() { # name size tone
  ffmpeg -loglevel error -y -f lavfi -i "testsrc2=size=$2:rate=30" \
    -f lavfi -i "sine=frequency=$3:sample_rate=44100" -t 6 \
    -c:v libx264 -profile:v main -preset veryfast -g 30 -keyint_min 30 -sc_threshold 0 \
    -b:v 150k -pix_fmt yuv420p -c:a aac -b:a 48k -ar 44100 -ac 2 -f flv "sample_$1.flv"
}
gen a 320x180 880
gen b 480x270 660
