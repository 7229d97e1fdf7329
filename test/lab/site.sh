#!/usr/bin/env bash
# The lab's air-gapped site services, on the lab gateway (this machine's address on the lab
# bridge): what a datacenter without Internet access runs for its hosts.
#   - a file mirror  http://GW:8080/  — the toolchain's mirror/ tree: release archives in their
#     upstream layout (github.com/<org>/<repo>/releases/download/…) with their sha256 files, the
#     CNI manifest, and a signed apt repository laid out like pkgs.k8s.io;
#   - an OCI registry  GW:5000  (distribution, built from its Go module; plain HTTP, declared to
#     containerd as such by the stack's registry settings) holding every image of images.txt.
#
#   site.sh up      build the toolchain if missing, start both (idempotent), push the images
#   site.sh down    stop both (by the PIDs recorded at start); the registry's storage is kept
#   site.sh status  what runs, where
# Environment: HAKUBE_LAB_DIR (state, default /var/lib/hakube-lab), GW (default 10.123.0.1).
set -Eeuo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LABDIR=${HAKUBE_LAB_DIR:-/var/lib/hakube-lab}
GW=${GW:-10.123.0.1}
RUN=$LABDIR/run/site          # not run/*.pid: lab.sh reads those as hosts
MIRROR_PORT=8080
REGISTRY_PORT=5000
TOOLCHAIN=$("$SRC/toolchain/build.sh" --path)
say() { echo "site: $*" >&2; }
die() { echo "site: ERROR: $*" >&2; exit 1; }

proc_start() { local st; st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 0; echo "$st" | cut -d' ' -f20; }
alive() {  # NAME -> pid of the live service recorded in $RUN/site-NAME.pid
  local f=$RUN/site-$1.pid pid st
  [ -f "$f" ] || return 1
  read -r pid st < "$f" || return 1
  [ -n "$pid" ] && [ "$(proc_start "$pid")" = "$st" ] && echo "$pid"
}
start() {  # NAME CMD…: detached, logged, pid + start time recorded
  local n=$1 pid; shift
  alive "$n" >/dev/null && return 0
  mkdir -p "$RUN" "$LABDIR/logs"
  # fd 9 is lab.sh's lock: a service must not hold it (or every later lab command waits)
  setsid "$@" >> "$LABDIR/logs/site-$n.log" 2>&1 < /dev/null 9>&- &
  pid=$!
  echo "$pid $(proc_start "$pid")" > "$RUN/site-$n.pid"
}
stop() {
  local n=$1 pid i
  if pid=$(alive "$n"); then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do alive "$n" >/dev/null || break; sleep 0.1; done
    alive "$n" >/dev/null && kill -KILL "$pid" 2>/dev/null || true
    say "$n stopped (pid $pid)"
  fi
  rm -f "$RUN/site-$n.pid"
}
wait_http() {  # URL: until it answers (≤ 15 s)
  local i
  for i in $(seq 150); do curl -fs -o /dev/null --max-time 1 "$1" && return 0; sleep 0.1; done
  return 1
}

case "${1:-}" in
  up)
    ip -4 -o addr show | grep -q " $GW/" || die "the lab gateway address $GW is not on this machine (run lab.sh up first)"
    "$SRC/toolchain/build.sh"
    start mirror node "$SRC/mirror-server.cjs" "$TOOLCHAIN/mirror" "$GW" "$MIRROR_PORT"
    wait_http "http://$GW:$MIRROR_PORT/" || die "the file mirror did not start (log: $LABDIR/logs/site-mirror.log)"
    mkdir -p "$LABDIR/registry"
    cat > "$RUN/registry.yml" <<EOF
version: 0.1
log: { level: warn, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $LABDIR/registry }, delete: { enabled: false } }
http: { addr: "$GW:$REGISTRY_PORT" }
EOF
    # (no OpenTelemetry exporter: it would dial localhost:4318 forever)
    start registry env OTEL_TRACES_EXPORTER=none "$TOOLCHAIN/bin/registry" serve "$RUN/registry.yml"
    wait_http "http://$GW:$REGISTRY_PORT/v2/" || die "the registry did not start (log: $LABDIR/logs/site-registry.log)"
    n=0
    while read -r name ref digest; do
      have=$(curl -fsI -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://${ref%%/*}/v2/$(echo "${ref#*/}" | sed 's/:\([^:]*\)$/\/manifests\/\1/')" 2>/dev/null | awk 'tolower($1) == "docker-content-digest:" { print $2 }' | tr -d '\r' || true)
      [ "$have" = "$digest" ] && continue
      node "$SRC/toolchain/oci-image.cjs" push "$TOOLCHAIN/images/$name" "$ref" --plain-http >/dev/null || die "cannot push $ref"
      n=$((n + 1))
    done < "$TOOLCHAIN/images/images.txt"
    say "file mirror http://$GW:$MIRROR_PORT/ and registry $GW:$REGISTRY_PORT up ($(wc -l < "$TOOLCHAIN/images/images.txt") images, $n pushed now)"
    ;;
  down) stop registry; stop mirror ;;
  status)
    for n in mirror registry; do
      if pid=$(alive "$n"); then echo "$n: running (pid $pid)"; else echo "$n: stopped"; fi
    done ;;
  *) echo "usage: site.sh up|down|status" >&2; exit 2 ;;
esac
