/**
 * Release downloads on a host, shared by every component that installs a binary release (etcd,
 * containerd, runc): a URL template with `{version}` and `{arch}`, and an optional sha256 per
 * architecture pinned in the stack config (`etcd.sha256`, `kubernetes.containerd.sha256`, …).
 * Pure: bash text only.
 */
import type { Arch } from "../config/spec";
import { shq } from "./shell";

/**
 * Bash functions (define once per script):
 * - `hakube_arch` — prints the host's architecture as release files name it (amd64, arm64, …);
 * - `hakube_url TEMPLATE VERSION ARCH` — prints TEMPLATE with `{version}` and `{arch}` filled in;
 * - `hakube_fetch URL FILE` — downloads with retries (curl, or wget; installs curl when neither exists);
 * - `hakube_check_sha256 FILE SUM URL SOURCE` — FILE's sha256 is SUM, else fails naming URL and where SUM came from;
 * - `hakube_published_sha256 SUMFILE NAME` — NAME's digest in a `sha256sum` file (either format; a lone digest too).
 */
export function downloadFunctions(): string {
  return `hakube_arch() {
  local a
  a=$(dpkg --print-architecture 2>/dev/null || uname -m)
  case "$a" in x86_64) a=amd64 ;; aarch64) a=arm64 ;; esac
  printf '%s' "$a"
}
hakube_url() {
  local u=\${1//\\{version\\}/$2}
  printf '%s' "\${u//\\{arch\\}/$3}"
}
hakube_fetch() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL --retry 3 --connect-timeout 20 --max-time 600 -o "$2" "$1" || hakube_fail "download of $1 failed"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -T 20 -t 3 -O "$2" "$1" || hakube_fail "download of $1 failed"
  else
    hakube_apt_install curl ca-certificates
    curl -fsSL --retry 3 --connect-timeout 20 --max-time 600 -o "$2" "$1" || hakube_fail "download of $1 failed"
  fi
}
hakube_check_sha256() {
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  [ -n "$2" ] && [ "$got" = "$2" ] || hakube_fail "sha256 of $3 is $got, $4 says \${2:-nothing}"
}
hakube_published_sha256() {
  local want
  want=$(awk -v n="$2" '{ f = $2; sub(/^\\*/, "", f) } f == n { print $1; exit }' "$1")
  [ -n "$want" ] || want=$(awk 'NF == 1 || NR == 1 { print $1; exit }' "$1")
  printf '%s' "$want"
}`;
}

/**
 * Bash that sets `$VAR` to the pinned digest for `$arch` from `sums` (the config key `keyPath`,
 * e.g. `etcd.sha256`), failing when the map lacks the host's architecture; `VAR=""` without a map.
 */
export function pinnedSha256(varName: string, sums: Partial<Record<Arch, string>> | undefined, keyPath: string): string {
  if (!sums) return `${varName}=""  # no ${keyPath} configured`;
  const entries = Object.entries(sums).filter(([, v]) => v);
  return `case "$arch" in
${entries.map(([a, v]) => `  ${shq(a)}) ${varName}=${shq(String(v).toLowerCase())} ;;`).join("\n")}
  *) hakube_fail "${keyPath} has no checksum for $arch (it has: ${entries.map(([a]) => a).join(", ") || "none"})" ;;
esac`;
}
