# fake etcdctl for the health-check parsing tests (sourced through BASH_ENV): canned answers
# FAKE_MEMBER_LIST (empty: "no member answers"), FAKE_HEALTH (+ FAKE_HEALTH_RC), a status table.
etcdctl() {
  local a
  for a in "$@"; do
    case "$a" in
      list)
        if [ -z "${FAKE_MEMBER_LIST:-}" ]; then
          echo '{"level":"warn","msg":"retrying of unary invoker failed"}' >&2
          echo "Error: context deadline exceeded" >&2
          return 1
        fi
        printf '%s\n' "$FAKE_MEMBER_LIST"
        return 0 ;;
      health)
        printf '%s\n' "$FAKE_HEALTH" >&2
        return "${FAKE_HEALTH_RC:-0}" ;;
      status)
        echo "| ENDPOINT | IS LEADER |"
        return 0 ;;
    esac
  done
  echo "fake etcdctl: $* is not supported" >&2
  return 1
}
