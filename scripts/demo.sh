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
build/dfewctl --home "$home" status --once
cat <<EOF2

== where things are
database:  $home/dfew.db     e.g.  sqlite3 $home/dfew.db 'SELECT * FROM movie_status'
outputs:   $home/outputs     (per-clip frames and tensors of later pipeline stages)
log:       $home/dfewd.log
more:      build/dfewctl --home $home show movie 1     (build/dfewctl --help lists the commands)
restart:   build/dfewd --home $home                     (this demo stops its daemon on exit)
EOF2
exit "$status"
