# Fakes for test/etcd/kubeadm.test.ts, sourced through BASH_ENV (see the comment on FAKES there).
fake_log() { printf '%s\n' "$*" >> "$FAKE_ROOT/calls"; }
kubeadm() {
  fake_log "kubeadm $*"
  local root="" cfg=""
  if [ "${1:-}" = --rootfs ]; then root=$2; shift 2; fi
  case "${1:-} ${2:-}" in
    "config validate")
      if [ -n "${FAKE_KUBEADM_INVALID:-}" ]; then echo "$FAKE_KUBEADM_INVALID" >&2; return 1; fi
      [ "${3:-}" = --config ] && [ -f "${4:-}" ] || { echo "fake kubeadm: no --config file" >&2; return 1; }
      echo ok; return 0 ;;
    "init phase") ;;
    *) echo "fake kubeadm: $* is not supported" >&2; return 1 ;;
  esac
  [ "${3:-} ${4:-}" = "etcd local" ] || { echo "fake kubeadm: init phase ${3:-} ${4:-} is not supported" >&2; return 1; }
  shift 4
  while [ $# -gt 0 ]; do
    case "$1" in --config) cfg=$2; shift 2 ;; *) echo "fake kubeadm: unknown flag $1" >&2; return 1 ;; esac
  done
  [ -n "$root" ] && [ -f "$root$cfg" ] || { echo "fake kubeadm: $root$cfg not found" >&2; return 1; }
  mkdir -p "$root/etc/kubernetes/manifests"
  awk -f "$FAKE_DIR/manifest.awk" "$root$cfg" > "$root/etc/kubernetes/manifests/etcd.yaml"
  cp "$root/etc/kubernetes/manifests/etcd.yaml" "$FAKE_ROOT/kubeadm-wrote.yaml"
  echo "[etcd] Creating static Pod manifest for local etcd in \"/etc/kubernetes/manifests\""
}
kubelet() { fake_log "kubelet $*"; echo "Kubernetes v1.37.2"; }
crictl() {
  fake_log "crictl $*"
  [ "${1:-}" = ps ] || { echo "fake crictl: $* is not supported" >&2; return 1; }
  if [ -s "$FAKE_ROOT/container" ] && [ -e "$FAKE_MANIFEST" ]; then cat "$FAKE_ROOT/container"; fi
  return 0
}
systemctl() {
  fake_log "systemctl $*"
  local a args=()
  for a in "$@"; do case "$a" in --quiet|-q|--value|--now|-p) ;; *) args+=("$a") ;; esac; done
  case "${args[0]:-}" in
    is-enabled) [ -f "$FAKE_ROOT/kubelet.enabled" ] ;;
    is-active) [ -f "$FAKE_ROOT/kubelet.active" ] ;;
    enable) touch "$FAKE_ROOT/kubelet.enabled" ;;
    disable) rm -f "$FAKE_ROOT/kubelet.enabled"; case " $* " in *" --now "*) rm -f "$FAKE_ROOT/kubelet.active" ;; esac ;;
    start|restart) touch "$FAKE_ROOT/kubelet.active" ;;
    stop) rm -f "$FAKE_ROOT/kubelet.active" ;;
    show) echo no ;;
    daemon-reload|reset-failed) ;;
    *) echo "fake systemctl: $* is not supported" >&2; return 1 ;;
  esac
}
curl() {
  fake_log "curl $*"
  case " $* " in
    *" http://127.0.0.1:10248/healthz "*) if [ -f "$FAKE_ROOT/kubelet.active" ]; then printf ok; else echo "curl: (7) Failed to connect" >&2; return 7; fi ;;
    *) echo "fake curl: $* is not supported" >&2; return 6 ;;
  esac
}
etcdctl() { fake_log "etcdctl $*"; echo "Error: context deadline exceeded" >&2; return 1; }
# Without root, ownership is not under test: chown is a no-op and stat reports what the scripts asked for.
if [ "$(id -u)" != 0 ]; then
  chown() { :; }
  install() {
    local a=()
    while [ $# -gt 0 ]; do case "$1" in -o|-g) shift 2 ;; *) a+=("$1"); shift ;; esac; done
    command install "${a[@]}"
  }
  stat() { command stat "$@" | sed -E 's/ [^ ]+ [^ ]+$/ root root/'; }
fi
