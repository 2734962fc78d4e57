#!/usr/bin/env bash
# Installs facegate as a systemd service from this checkout (run as root, from anywhere):
#   code      /opt/facegate          (built JS, production node_modules, models built here once:
#                                     the service sees /opt read-only)
#   config    /etc/facegate/facegate.yaml   (from config/facegate.example.yaml, never overwritten)
#   secrets   /etc/facegate/facegate.env    (FACEGATE_MQTT_PASSWORD=…, mode 0640 root:facegate)
#   state     /var/lib/facegate      (gallery; created by systemd's StateDirectory=)
#   unit      /etc/systemd/system/facegate.service
#   command   /usr/local/bin/facegate
# and a system user `facegate` (groups: video). Then validates the config and enables the unit.
#
# Options: --prefix DIR (default /opt/facegate), --no-start (install and enable, do not start),
#          --root DIR (stage everything under DIR: no user, no systemctl; for packaging and tests),
#          --skip-build (use the checkout's dist/ and node_modules as they are).
set -euo pipefail

SRC="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX=/opt/facegate
ROOT=""
START=1
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="$2"; shift 2 ;;
    --root) ROOT="$(mkdir -p "$2" && cd "$2" && pwd)"; shift 2 ;;
    --no-start) START=0; shift ;;
    --skip-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "== facegate install: $*"; }
if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (sudo $0), or stage with --root DIR" >&2
  exit 1
fi
NODE="$(command -v node || true)"
if [ -z "$NODE" ]; then echo "install.sh: node (20 or 22) is not on PATH" >&2; exit 1; fi

if [ "$BUILD" -eq 1 ]; then
  say "building in $SRC"
  (cd "$SRC" && npm ci --no-audit --no-fund && npm run -s build)
fi
[ -f "$SRC/dist/agent/main.js" ] || { echo "install.sh: $SRC/dist/agent/main.js missing: run npm run build" >&2; exit 1; }

DEST="$ROOT$PREFIX"
say "copying to $DEST"
mkdir -p "$DEST"
# The runtime tree only: no tests, no git, no local data (a symlinked node_modules stays a link).
tar -C "$SRC" -cf - package.json package-lock.json bin dist models config README.md node_modules | tar -C "$DEST" -xf -
if [ "$BUILD" -eq 1 ]; then
  (cd "$DEST" && npm prune --omit=dev --no-audit --no-fund >/dev/null)
  # The service cannot write under /opt: build the generated ONNX models now.
  say "building the models"
  (cd "$DEST" && "$NODE" dist/agent/main.js models build)
fi

say "configuration in $ROOT/etc/facegate"
install -d -m 0755 "$ROOT/etc/facegate"
if [ ! -e "$ROOT/etc/facegate/facegate.yaml" ]; then
  sed -e 's#^\# dataDir: .*#dataDir: /var/lib/facegate#' -e 's#\./facegate.schema.json#'"$PREFIX"'/config/facegate.schema.json#' \
    "$SRC/config/facegate.example.yaml" >"$ROOT/etc/facegate/facegate.yaml"
  say "wrote $ROOT/etc/facegate/facegate.yaml from the example: edit the cameras and the broker"
fi
if [ ! -e "$ROOT/etc/facegate/facegate.env" ]; then
  printf '# Secrets for facegate.service (see README): one VAR=value per line.\n# FACEGATE_MQTT_PASSWORD=\n' >"$ROOT/etc/facegate/facegate.env"
  chmod 0640 "$ROOT/etc/facegate/facegate.env"
fi

say "unit and command"
install -d "$ROOT/etc/systemd/system" "$ROOT/usr/local/bin"
sed -e "s#/opt/facegate#$PREFIX#g" -e "s#^ExecStart=/usr/bin/node #ExecStart=$NODE #" \
  "$SRC/systemd/facegate.service" >"$ROOT/etc/systemd/system/facegate.service"
chmod 0644 "$ROOT/etc/systemd/system/facegate.service"
ln -sf "$PREFIX/bin/facegate.js" "$ROOT/usr/local/bin/facegate"

if [ -n "$ROOT" ]; then
  say "staged under $ROOT (no user created, systemd not touched)"
  exit 0
fi

if ! id facegate >/dev/null 2>&1; then
  say "creating the system user facegate"
  useradd --system --user-group --home-dir /var/lib/facegate --no-create-home --shell /usr/sbin/nologin facegate
fi
getent group video >/dev/null && usermod -a -G video facegate
chown root:facegate /etc/facegate/facegate.env

say "checking /etc/facegate/facegate.yaml"
"$NODE" "$PREFIX/dist/agent/main.js" config check /etc/facegate/facegate.yaml || {
  echo "install.sh: fix the errors above, then: systemctl enable --now facegate" >&2
  systemctl daemon-reload
  exit 1
}
systemctl daemon-reload
if [ "$START" -eq 1 ]; then
  systemctl enable --now facegate
  say "started: systemctl status facegate; journalctl -u facegate -f"
else
  systemctl enable facegate
  say "enabled; start with: systemctl start facegate"
fi
