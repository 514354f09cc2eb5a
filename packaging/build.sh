#!/bin/sh
# Build the one-folder package and smoke-test it (what `make package` does, plus a check).
#   packaging/build.sh            -> dist/mestudio/mestudio
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
make package
"$root/dist/mestudio/mestudio" --version
QT_QPA_PLATFORM=offscreen "$root/dist/mestudio/mestudio" -q demo --frames 30 \
    --screenshot "$root/build/package-smoke.png" --stats
echo "package ok: $root/dist/mestudio (screenshot: build/package-smoke.png)"
