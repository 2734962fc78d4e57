#!/usr/bin/env bash
# Installs the Debian packages the tests use: ffmpeg (camera decoding), mosquitto (MQTT broker for
# event tests), GStreamer's RTSP server with Debian's python3-gi (test RTSP server) and systemd
# (systemd-analyze verify of the unit, systemd-notify for readiness/watchdog tests). Idempotent
# and quiet: does nothing when everything is already installed. Needs root (or sudo) and apt.
set -euo pipefail

PACKAGES=(
  ffmpeg
  mosquitto
  python3-gi
  gir1.2-gst-rtsp-server-1.0
  gstreamer1.0-tools
  gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad
  systemd
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "== test deps: all installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
echo "== test deps: installing ${missing[*]}"
start=$(date +%s)
log=$(mktemp)
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  echo "== test deps: apt-get failed" >&2
  exit 1
fi
rm -f "$log"
echo "== test deps: installed in $(( $(date +%s) - start )) s"
