/**
 * The per-host preflight script: the first step on every host. Pure: no Pulumi import.
 *
 * It collects every problem and fails once, naming them all. It holds no current time: the
 * clock is compared with the validity start of the certificates issued for the host, which
 * are stable values, so the script (and the preview) stays the same from run to run.
 */
import { shq, shqAll } from "./shell";

export interface SupportedOs {
  /** `ID` from /etc/os-release */
  id: string;
  /** `VERSION_ID` values */
  versions: string[];
}

/** Debian 12/13 and Ubuntu 22.04/24.04 (amd64, arm64): what the packages and kubeadm support. */
export const SUPPORTED_OS: SupportedOs[] = [
  { id: "debian", versions: ["12", "13"] },
  { id: "ubuntu", versions: ["22.04", "24.04"] },
];
export const SUPPORTED_ARCHES = ["amd64", "arm64"];

export interface PortNeed {
  port: number;
  /** what needs it (for the message) */
  what: string;
  /** process names that may already hold it (our own service on a re-run) */
  owners: string[];
}

export interface PreflightInput {
  host: string;
  roles: string[];
  ports: PortNeed[];
  /** RFC 3339 validity starts of the certificates issued for this host (issued on the Pulumi machine). */
  certificateStarts: string[];
  /** Clock lag (seconds) that is waited out instead of failing. */
  clockGraceSeconds?: number;
  /** Commands the host must have. */
  commands?: string[];
  supportedOs?: SupportedOs[];
  arches?: string[];
}

export function renderPreflight(p: PreflightInput): string {
  const os = p.supportedOs ?? SUPPORTED_OS;
  const arches = p.arches ?? SUPPORTED_ARCHES;
  const grace = p.clockGraceSeconds ?? 30;
  const commands = [...new Set(["systemctl", "ss", "base64", "mktemp", "install", "cmp", "stat", "openssl", ...(p.commands ?? [])])].sort();
  const starts = [...new Set(p.certificateStarts)].sort();
  const osCase = os.map((o) => `    ${o.versions.map((v) => `${o.id}:${v}`).join("|")}) ;;`).join("\n");
  const supportedText = os.map((o) => `${o.id} ${o.versions.join("/")}`).join(", ");
  const portLines = [...p.ports]
    .sort((a, b) => a.port - b.port)
    .map((n) => `check_port ${shqAll([n.port, n.what, n.owners.join(" ")])}`)
    .join("\n");

  return `# preflight for roles: ${p.roles.join(", ")}
problems=()
problem() { problems+=("$*"); }

[ -d /run/systemd/system ] || problem "systemd is not running (PID 1 is $(cat /proc/1/comm 2>/dev/null || echo unknown))"
for c in ${shqAll(commands)}; do
  command -v "$c" >/dev/null 2>&1 || problem "command $c is missing"
done

os_id=unknown os_version=unknown
if [ -r /etc/os-release ]; then
  os_id=$(. /etc/os-release && echo "\${ID:-unknown}")
  os_version=$(. /etc/os-release && echo "\${VERSION_ID:-unknown}")
fi
case "$os_id:$os_version" in
${osCase}
  *) problem "unsupported OS $os_id $os_version (supported: ${supportedText})" ;;
esac

arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
case "$arch" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; esac
case " ${arches.join(" ")} " in
  *" $arch "*) ;;
  *) problem "unsupported CPU architecture $arch (supported: ${arches.join(", ")})" ;;
esac

listeners=$(ss -Hltnp 2>/dev/null || true)
# check_port PORT WHAT OWNERS: free, or held by one of our own services (a re-run)
check_port() {
  local port=$1 what=$2 owners=$3 holder
  for holder in $(printf '%s\\n' "$listeners" | awk -v p="$port" '{ n = split($4, a, ":"); if (a[n] == p) { h = "?"; if (match($0, /users:\\(\\("[^"]*"/)) h = substr($0, RSTART + 9, RLENGTH - 10); print h } }' | sort -u); do
    case " $owners " in *" $holder "*) ;; *) problem "port $port ($what) is in use by $( [ "$holder" = "?" ] && echo "an unknown process" || echo "$holder")" ;; esac
  done
}
${portLines}

now=$(date -u +%s)
for start in ${starts.length ? shqAll(starts) : ""}; do
  valid_from=$(date -u -d "$start" +%s)
  lag=$((valid_from - now))
  if [ "$lag" -gt ${grace} ]; then
    problem "clock is $lag s behind the certificates issued for this host (valid from $start, host time $(date -u +%Y-%m-%dT%H:%M:%SZ)); enable time sync (timedatectl set-ntp true)"
  elif [ "$lag" -gt 0 ]; then
    echo "clock is $lag s behind certificate start $start: waiting"
    sleep "$((lag + 1))"
    now=$(date -u +%s)
  fi
done

if [ "\${#problems[@]}" -gt 0 ]; then
  msg="\${#problems[@]} problem(s)"
  for p in "\${problems[@]}"; do msg="$msg; $p"; done
  hakube_fail "$msg"
fi
echo "ok: $os_id $os_version $arch, roles ${shq(p.roles.join(","))}"
`;
}
