#!/usr/bin/env bash
# Start a private PulseAudio daemon with a null sink whose monitor is the default source,
# so audio-device tests run on machines without a sound card.
# Usage: scripts/pulse-null-sink.sh DIR   (prints the environment to export)
set -euo pipefail
dir=${1:?runtime dir}
mkdir -p "$dir/pulse"
cat > "$dir/default.pa" <<PA
load-module module-native-protocol-unix auth-anonymous=1 socket=$dir/pulse/native
load-module module-null-sink sink_name=vk_sink rate=48000
set-default-sink vk_sink
set-default-source vk_sink.monitor
PA
export XDG_RUNTIME_DIR=$dir PULSE_RUNTIME_PATH=$dir/pulse PULSE_SERVER=unix:$dir/pulse/native HOME=$dir
pulseaudio -n -F "$dir/default.pa" --daemonize=no --exit-idle-time=-1 --disallow-exit \
    --log-target=file:"$dir/pulseaudio.log" &
echo $! > "$dir/pid"
for _ in $(seq 50); do pactl info >/dev/null 2>&1 && break; sleep 0.1; done
pactl info >/dev/null
