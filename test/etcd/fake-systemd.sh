# fake systemd for hakube's etcd tests: one etcd.service under $FAKE_ROOT
fake_say() { [ "$quiet" = 1 ] || echo "$1"; }
fake_pid() { cat "$FAKE_ROOT/etcd.pid" 2>/dev/null || true; }
fake_alive() {
  local pid
  pid=$(fake_pid)
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] && [ "$(awk '{ print $3 }' "/proc/$pid/stat")" != Z ]
}
fake_start() {
  local unit="$FAKE_ROOT/etc/systemd/system/etcd.service" exec_start user
  if [ ! -f "$unit" ]; then echo "Unit etcd.service not found." >&2; return 5; fi
  exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
  user=$(sed -n 's/^User=//p' "$unit")
  # FAKE_START_DELAY: a slow start (a big data dir), the process exists but does not serve yet
  (sleep "${FAKE_START_DELAY:-0}"; exec setpriv --reuid="$user" --regid="$user" --init-groups $exec_start) >> "$FAKE_ROOT/etcd.log" 2>&1 < /dev/null &
  echo "$!" > "$FAKE_ROOT/etcd.pid"
  echo "$!" >> "$FAKE_ROOT/pids"
  return 0
}
fake_stop() {
  local pid i
  if ! fake_alive; then rm -f "$FAKE_ROOT/etcd.pid"; return 0; fi
  pid=$(fake_pid)
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 100); do
    if ! fake_alive; then break; fi
    sleep 0.1
  done
  if fake_alive; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$FAKE_ROOT/etcd.pid"
  return 0
}
systemctl() {
  local a args=() quiet=0
  for a in "$@"; do
    case "$a" in --quiet|-q) quiet=1 ;; --value|--no-block|--runtime|-p) ;; *) args+=("$a") ;; esac
  done
  printf '%s %s\n' "$(date +%s%3N)" "$*" >> "$FAKE_ROOT/systemctl.log"
  case "${args[0]:-}" in
    is-active) if fake_alive; then fake_say active; else fake_say inactive; return 3; fi ;;
    is-enabled) if [ -f "$FAKE_ROOT/enabled" ]; then fake_say enabled; else fake_say disabled; return 1; fi ;;
    enable) touch "$FAKE_ROOT/enabled" ;;
    disable) rm -f "$FAKE_ROOT/enabled" ;;
    start) if ! fake_alive; then fake_start; fi ;;
    restart) fake_stop; fake_start ;;
    stop) fake_stop ;;
    daemon-reload|reset-failed|mask|unmask) ;;
    show) case " ${args[*]} " in *" MainPID "*) if fake_alive; then fake_pid; else echo 0; fi ;; *) echo no ;; esac ;;
    *) echo "fake systemctl: $* is not supported" >&2; return 1 ;;
  esac
  return 0
}
