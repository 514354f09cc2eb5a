#!/bin/sh
# Add mestudio to the desktop menu of the current user (Linux, freedesktop.org).
#   packaging/install-desktop.sh [PATH_TO_MESTUDIO_EXECUTABLE]
# Default executable: dist/mestudio/mestudio (the `make package` build), else `mestudio`
# on the PATH (pip/venv install).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
exe=${1:-}
if [ -z "$exe" ]; then
    if [ -x "$root/dist/mestudio/mestudio" ]; then
        exe="$root/dist/mestudio/mestudio"
    else
        exe=$(command -v mestudio || true)
    fi
fi
if [ -z "$exe" ] || [ ! -x "$exe" ]; then
    echo "install-desktop.sh: no mestudio executable found; build it with 'make package' or pass its path" >&2
    exit 2
fi
exe=$(cd "$(dirname "$exe")" && pwd)/$(basename "$exe")
data=${XDG_DATA_HOME:-$HOME/.local/share}
mkdir -p "$data/applications" "$data/icons/hicolor/256x256/apps" "$data/icons/hicolor/scalable/apps"
cp "$root/assets/icon.png" "$data/icons/hicolor/256x256/apps/mestudio.png"
cp "$root/assets/icon.svg" "$data/icons/hicolor/scalable/apps/mestudio.svg"
sed "s|^Exec=mestudio|Exec=\"$exe\"|" "$here/mestudio.desktop" > "$data/applications/mestudio.desktop"
chmod 644 "$data/applications/mestudio.desktop"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$data/applications" || true
echo "installed $data/applications/mestudio.desktop (runs $exe)"
