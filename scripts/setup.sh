#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine for voicekit: system packages (when run as root),
# a virtualenv in .venv and the package with the extras asked for.
# Usage: scripts/setup.sh [EXTRAS]   e.g. scripts/setup.sh offline   or   scripts/setup.sh dev
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-offline}
stamp=".venv/.installed-$extras"

system_packages=(python3-venv python3-dev gcc)
case "$extras" in
    *dev*|*all*|*mic*) system_packages+=(portaudio19-dev) ;;  # pyaudio builds against PortAudio
esac
if [ "$extras" = dev ]; then
    # PulseAudio + its ALSA plugin: the device tests play and record on a null sink
    system_packages+=(pulseaudio pulseaudio-utils libasound2-plugins chromium postgresql)
fi

missing=()
for pkg in "${system_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing system packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "note: these system packages are missing (install them as root): ${missing[*]}" >&2
    fi
fi

if [ "$extras" = dev ]; then
    # Pipecat's official browser client, bundled by the serve browser tests
    if command -v npm >/dev/null; then
        if [ ! -d tests/browser/node_modules ] || [ tests/browser/package-lock.json -nt tests/browser/node_modules ]; then
            (cd tests/browser && npm ci --loglevel=error >/dev/null) && touch tests/browser/node_modules
        fi
    else
        echo "note: npm is missing: the browser test of Pipecat's official client needs it" >&2
    fi
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[$extras]"
    touch "$stamp"
fi
