#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, starts dfewd on
# a fresh home (./demo-home), submits a real video (Debian's webcam sample by
# default, or the path you give), waits for the work, prints the result and
# says where everything is. Usage: scripts/demo.sh [VIDEO]
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

video=${1:-/usr/share/forensics-samples/original-files/movie2/movie-hello.mp4}

scripts/setup-deps.sh
if [ ! -f build/build.ninja ]; then
  meson setup build
fi
meson compile -C build

if [ ! -e "$video" ]; then
  echo "demo: $video does not exist; give the path of a video file: scripts/demo.sh MOVIE" >&2
  exit 2
fi

home=$top/demo-home
if [ -e "$home/dfewd.lock" ] && [ -S "$home/dfewd.sock" ]; then
  build/dfewctl --home "$home" status --once >/dev/null 2>&1 &&
    kill "$(head -n1 "$home/dfewd.lock")" 2>/dev/null && sleep 1 || true
fi
rm -rf "$home"
mkdir -p "$home"

echo "== starting dfewd on a fresh home: $home"
build/dfewd --home "$home"
pid=$(head -n1 "$home/dfewd.lock")
stop_daemon() { kill "$pid" 2>/dev/null || true; }
trap stop_daemon EXIT

echo "== submitting $video"
build/dfewctl --home "$home" submit "$video"
echo "== waiting for the work to finish"
status=0
build/dfewctl --home "$home" wait --timeout 900 || status=$?

echo
echo "== result"
build/dfewctl --home "$home" movies
echo
build/dfewctl --home "$home" clips
echo
build/dfewctl --home "$home" status --once
build/dfewctl --home "$home" sheet movie 1 -o "$home/sheet-movie-1.png" >/dev/null 2>&1 || true
first_clip=$(sqlite3 "$home/dfew.db" "SELECT min(clip_id) FROM clip_status WHERE state = 'usable'" 2>/dev/null || true)
if [ -n "$first_clip" ]; then
  build/dfewctl --home "$home" sheet "$first_clip" -o "$home/sheet-clip-$first_clip.png" >/dev/null 2>&1 || true
fi
cat <<EOF2

== where things are
database:  $home/dfew.db     e.g.  sqlite3 $home/dfew.db 'SELECT * FROM clip_status'
outputs:   $home/outputs/clips/<clip id>/   (01.png..16.png aligned frames after TIM, aligned.u8 every
           aligned face frame, faces.bin boxes + 68 landmarks, clip.u8 the tensor for training;
           docs/formats.md)
sheets:    $home/sheet-movie-1.png (shots and chosen clips)${first_clip:+, $home/sheet-clip-$first_clip.png (frames, landmarks, aligned faces)}
log:       $home/dfewd.log
more:      build/dfewctl --home $home show movie 1     (build/dfewctl --help lists the commands)
restart:   build/dfewd --home $home                     (this demo stops its daemon on exit)
EOF2
exit "$status"
