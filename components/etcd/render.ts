/**
 * etcd: the member configuration, the systemd unit and the remote scripts, rendered from plain
 * values. Pure: no Pulumi import (the component in `index.ts` feeds it resolved values).
 *
 * Steps per member host (see docs/etcd.md):
 *   install  — etcd user, binaries (download / apt / preinstalled), version check;
 *   member   — stage + validate certificates, config and unit, refuse member-list changes, swap
 *              them in, then start (not serving yet: never waits) or restart (serving: rolling,
 *              only when the content stamp changed, waits until the cluster is healthy again);
 *   health   — (first member only) every configured member joined and healthy.
 * The member steps are chained in host order, so at most one member restarts at a time.
 */
import { createHash } from "node:crypto";
import { stringify } from "yaml";
import { DEFAULT_ETCD_VERSION, DEFAULTS, MIN_EXTERNAL_ETCD_VERSION } from "../config/defaults";
import type { EtcdSpec } from "../config/spec";
import { heredocDelimiter, shq, shqAll } from "../remote/shell";
import { downloadFunctions, pinnedSha256 } from "../remote/download";

export const CLIENT_PORT = 2379;
export const PEER_PORT = 2380;
export const UNIT_NAME = "etcd.service";

/** Where things live on a member host. Tests relocate them; the program uses `DEFAULT_PATHS`. */
export interface EtcdPaths {
  configDir: string;
  pkiDir: string;
  configFile: string;
  unitFile: string;
  /** hakube's own records: `applied` (content stamp of the running member), `initial-cluster`, `owner`. */
  stateDir: string;
  /** Where `source: download` installs etcd, etcdctl, etcdutl. */
  binDir: string;
  /** Where the distribution's etcd-server / etcd-client put etcd and etcdctl (`source: apt`). */
  distBinDir: string;
}

export const DEFAULT_PATHS: EtcdPaths = {
  configDir: "/etc/etcd",
  pkiDir: "/etc/etcd/pki",
  configFile: "/etc/etcd/etcd.conf.yml",
  unitFile: `/etc/systemd/system/${UNIT_NAME}`,
  stateDir: "/var/lib/hakube/etcd",
  binDir: "/usr/local/bin",
  distBinDir: "/usr/bin",
};

/** Certificate and key files in `pkiDir`. */
export const PKI_FILES = {
  ca: "ca.crt",
  serverCert: "server.crt",
  serverKey: "server.key",
  peerCert: "peer.crt",
  peerKey: "peer.key",
  healthcheckCert: "healthcheck-client.crt",
  healthcheckKey: "healthcheck-client.key",
} as const;

/** hakube's records in `stateDir` (removed by a member's delete). */
export const STATE_FILES = ["applied", "initial-cluster", "owner", "deployment"] as const;

/** The member step's secret payloads on stdin, in this order. */
export const MEMBER_SECRETS = ["serverKey", "peerKey", "healthcheckKey"] as const;

/**
 * Server tuning, the same on every member. Heartbeat/election come from the stack
 * (`etcd.heartbeatIntervalMs`/`electionTimeoutMs`, see `EtcdTuning`); the rest is fixed:
 * `snapshot-count` is kubeadm's; the quota is etcd's recommended maximum (8 GiB, a limit, not an
 * allocation); kube-apiserver compacts every 5 min itself, the periodic compaction is a backstop.
 */
export const TUNING = {
  snapshotCount: 10000,
  quotaBackendBytes: 8 * 1024 ** 3,
  autoCompactionMode: "periodic",
  autoCompactionRetention: "1h",
} as const;

/** Raft timing (stack setting; validated in config/spec.ts, measured in docs/etcd.md "Leader failover"). */
export type EtcdTuning = Pick<EtcdSpec, "heartbeatIntervalMs" | "electionTimeoutMs">;
export const DEFAULT_TUNING: EtcdTuning = {
  heartbeatIntervalMs: DEFAULTS.etcd.heartbeatIntervalMs,
  electionTimeoutMs: DEFAULTS.etcd.electionTimeoutMs,
};

/** Bounded waits (seconds). */
export const WAITS = {
  /** before a rolling restart: the cluster must be healthy (the previous member may still be catching up) */
  beforeRestart: 60,
  /** after a rolling restart: this member, then the whole cluster, healthy again */
  afterRestart: 120,
  /** the health gate after all members */
  gate: 180,
} as const;

export interface EtcdMember {
  name: string;
  internalAddress: string;
}

export const clientUrl = (m: EtcdMember) => `https://${m.internalAddress}:${CLIENT_PORT}`;
export const peerUrl = (m: EtcdMember) => `https://${m.internalAddress}:${PEER_PORT}`;

/** Members sorted by name: host order does not change the rendered config. */
function byName(members: EtcdMember[]): EtcdMember[] {
  return [...members].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** `name=peerURL,...` sorted by name (etcd does not care about the order; a reordered host list changes nothing). */
export function initialCluster(members: EtcdMember[]): string {
  return byName(members)
    .map((m) => `${m.name}=${peerUrl(m)}`)
    .join(",");
}

/** Peer URLs sorted in byte order (the scripts compare them with `sort` under LC_ALL=C). */
export function sortedPeerUrls(members: EtcdMember[]): string[] {
  return members.map(peerUrl).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Distinguishes this cluster's bootstrap from any other etcd cluster on the same network. */
export function initialClusterToken(clusterName: string): string {
  return `hakube-${clusterName}-etcd`;
}

/** `3.4.23` → `3.4` */
export function majorMinor(version: string): string {
  const m = /^(\d+)\.(\d+)/.exec(version);
  if (!m) throw new Error(`hakube: etcd version ${JSON.stringify(version)} is not major.minor.patch`);
  return `${m[1]}.${m[2]}`;
}

/**
 * The etcd binary the unit starts. `preinstalled` uses the bare name: systemd (≥ 239) resolves it
 * in its fixed search path, the same PATH the scripts run with (the install step checks it).
 */
export function etcdBinary(source: EtcdSpec["source"], paths: EtcdPaths = DEFAULT_PATHS): string {
  if (source === "download") return `${paths.binDir}/etcd`;
  if (source === "apt") return `${paths.distBinDir}/etcd`;
  return "etcd";
}

export interface MemberConfigInput {
  member: EtcdMember;
  members: EtcdMember[];
  clusterName: string;
  dataDir: string;
  paths?: EtcdPaths;
  /** Also serve clients on https://127.0.0.1:2379 (co-located clients). Default true. */
  listenLocalhost?: boolean;
  /** Raft heartbeat / election timeout (`etcd.heartbeatIntervalMs`, `etcd.electionTimeoutMs`). Default `DEFAULT_TUNING`. */
  tuning?: EtcdTuning;
}

/**
 * `/etc/etcd/etcd.conf.yml` as an object. Only keys that mean the same in etcd 3.4, 3.5, 3.6
 * and 3.7 (no `enable-v2`, `debug`, `experimental-*`; `logger: zap` + `log-outputs: [stderr]`,
 * which 3.4 needs spelled out and 3.5+ take as default). etcd ignores unknown keys silently,
 * so the key names are pinned by a test.
 */
export function memberConfig(i: MemberConfigInput): Record<string, unknown> {
  const paths = i.paths ?? DEFAULT_PATHS;
  const tuning = i.tuning ?? DEFAULT_TUNING;
  const pki = (f: string) => `${paths.pkiDir}/${f}`;
  const clientUrls = [clientUrl(i.member), ...(i.listenLocalhost === false ? [] : [`https://127.0.0.1:${CLIENT_PORT}`])];
  return {
    name: i.member.name,
    "data-dir": i.dataDir,
    "listen-peer-urls": peerUrl(i.member),
    "listen-client-urls": clientUrls.join(","),
    "initial-advertise-peer-urls": peerUrl(i.member),
    "advertise-client-urls": clientUrl(i.member),
    "initial-cluster": initialCluster(i.members),
    "initial-cluster-state": "new",
    "initial-cluster-token": initialClusterToken(i.clusterName),
    "client-transport-security": {
      "cert-file": pki(PKI_FILES.serverCert),
      "key-file": pki(PKI_FILES.serverKey),
      "client-cert-auth": true,
      "trusted-ca-file": pki(PKI_FILES.ca),
      "auto-tls": false,
    },
    "peer-transport-security": {
      "cert-file": pki(PKI_FILES.peerCert),
      "key-file": pki(PKI_FILES.peerKey),
      "client-cert-auth": true,
      "trusted-ca-file": pki(PKI_FILES.ca),
      "auto-tls": false,
    },
    "heartbeat-interval": tuning.heartbeatIntervalMs,
    "election-timeout": tuning.electionTimeoutMs,
    "snapshot-count": TUNING.snapshotCount,
    "quota-backend-bytes": TUNING.quotaBackendBytes,
    "auto-compaction-mode": TUNING.autoCompactionMode,
    "auto-compaction-retention": TUNING.autoCompactionRetention,
    logger: "zap",
    "log-level": "info",
    "log-outputs": ["stderr"],
  };
}

export function renderConfig(i: MemberConfigInput): string {
  return (
    `# etcd member ${i.member.name} of hakube cluster ${i.clusterName}. Managed by hakube: \`pulumi up\` rewrites this file.\n` +
    stringify(memberConfig(i), { lineWidth: 0 })
  );
}

export interface UnitInput {
  member: string;
  /** the member's internalAddress: at boot the unit waits (≤ 30 s) until the host has it, or etcd cannot bind */
  address: string;
  clusterName: string;
  source: EtcdSpec["source"];
  /** undefined: the distribution's etcd (source apt), at least MIN_EXTERNAL_ETCD_VERSION (never 3.4) */
  version?: string;
  paths?: EtcdPaths;
}

/**
 * Our own unit, `/etc/systemd/system/etcd.service` (it overrides the Debian package's unit of the
 * same name, so `systemctl status etcd` keeps working). `TimeoutStartSec=infinity`: a member
 * becomes ready only with a quorum, and a big data dir takes a while to load; systemd must not
 * kill it meanwhile. The scripts never wait on systemctl (they use --no-block and bounded health
 * checks).
 */
export function renderUnit(u: UnitInput): string {
  const paths = u.paths ?? DEFAULT_PATHS;
  const env = u.version !== undefined && majorMinor(u.version) === "3.4" ? ["# etcd 3.4 runs on arm64 only when told to (3.5+ supports it)", "Environment=ETCD_UNSUPPORTED_ARCH=arm64"] : [];
  return [
    `# etcd member ${u.member} of hakube cluster ${u.clusterName}. Managed by hakube: \`pulumi up\` rewrites this file.`,
    "[Unit]",
    `Description=etcd member ${u.member} (hakube cluster ${u.clusterName})`,
    "Documentation=https://etcd.io/docs",
    "After=network-online.target time-sync.target",
    "Wants=network-online.target",
    "",
    "[Service]",
    "Type=notify",
    "User=etcd",
    "Group=etcd",
    ...env,
    `ExecStartPre=-/usr/bin/timeout 30 /bin/sh -c 'until ip -4 -o addr show | grep -q " ${u.address}/"; do sleep 0.2; done'`,
    `ExecStart=${etcdBinary(u.source, paths)} --config-file=${paths.configFile}`,
    "Restart=always",
    "RestartSec=2s",
    "TimeoutStartSec=infinity",
    "LimitNOFILE=65536",
    "IOSchedulingClass=best-effort",
    "IOSchedulingPriority=0",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

export interface StampInput {
  config: string;
  unit: string;
  caCertPem: string;
  serverCertPem: string;
  peerCertPem: string;
  healthcheckCertPem: string;
  source: EtcdSpec["source"];
  /** The configured etcd version (a rolling restart refuses minor-version skips and downgrades);
   *  undefined: the distribution's (source apt without etcd.version), read from the binary on the host. */
  version?: string;
}

/**
 * The member's content stamp: what the running process must have been started with. Public
 * material only (a key never changes without its certificate changing).
 */
export function memberStamp(s: StampInput): string {
  const h = createHash("sha256");
  for (const part of [s.config, s.unit, s.caCertPem, s.serverCertPem, s.peerCertPem, s.healthcheckCertPem, `${s.source} ${s.version ?? "distribution"}`])
    h.update(`${Buffer.byteLength(part)}:${part}\n`);
  return h.digest("hex");
}

/* ------------------------------------------------------------------ install */

export interface InstallInput {
  etcd: EtcdSpec;
  paths?: EtcdPaths;
}

/** The pinned version (every source but apt always has one: the config parser fills the default). */
function pinned(e: EtcdSpec): string {
  if (e.version === undefined) throw new Error(`hakube: etcd.version is required with source ${e.source}`);
  return e.version;
}

/** `sed`-free: `{version}` and `{arch}` are filled on the host (components/remote/download.ts, shared with containerd/runc). */
function downloadBody(e: EtcdSpec, paths: EtcdPaths): string {
  const bin = paths.binDir;
  return `want=${shq(pinned(e))}
url_template=${shq(e.downloadUrl)}
bin_dir=${shq(bin)}
${downloadFunctions()}
arch=$(hakube_arch)

# (awk reads to the end: an early exit could SIGPIPE the writer, which pipefail reports)
etcd_version() { { "$1" --version 2>/dev/null || true; } | awk '/^etcd Version:/ && !v { v = $3 } END { print v }'; }
etcdctl_version() { { "$1" version 2>/dev/null || true; } | awk '/^etcdctl version:/ && !v { v = $3 } END { print v }'; }

if [ -x "$bin_dir/etcd" ] && [ -x "$bin_dir/etcdctl" ] \\
   && [ "$(etcd_version "$bin_dir/etcd")" = "$want" ] && [ "$(etcdctl_version "$bin_dir/etcdctl")" = "$want" ]; then
  echo "ok: etcd $want is installed in $bin_dir"
else
  url=$(hakube_url "$url_template" "$want" "$arch")
${pinnedSha256("sum", e.sha256, "etcd.sha256").replace(/^/gm, "  ")}
  dl=$(mktemp -d /var/tmp/hakube-etcd.XXXXXX)
  trap 'rm -rf "$dl"' EXIT
  hakube_fetch "$url" "$dl/etcd.tar.gz"
  # without etcd.sha256 the download is not verified
  [ -z "$sum" ] || hakube_check_sha256 "$dl/etcd.tar.gz" "$sum" "$url" "etcd.sha256.$arch"
  mkdir "$dl/x"
  tar -xzf "$dl/etcd.tar.gz" -C "$dl/x" --no-same-owner 2>/dev/null || hakube_fail "$url is not a .tar.gz archive"
  found=$(find "$dl/x" -type f -name etcd -print -quit)
  src=$(dirname "\${found:-$dl/x/none}")
  [ -n "$found" ] && [ -f "$src/etcdctl" ] || hakube_fail "$url has no etcd and etcdctl binaries"
  chmod 0755 "$src/etcd" "$src/etcdctl"
  got=$(etcd_version "$src/etcd")
  [ "$got" = "$want" ] || hakube_fail "the etcd in $url reports version \${got:-none}, expected $want"
  install -d -m 0755 "$bin_dir"
  for b in etcd etcdctl etcdutl; do
    [ -f "$src/$b" ] || continue
    # a new file renamed over the old one: a running etcd keeps its (old) binary until it restarts
    install -m 0755 -o root -g root "$src/$b" "$bin_dir/.$b.hakube-new"
    mv -f "$bin_dir/.$b.hakube-new" "$bin_dir/$b"
  done
  echo "installed etcd $want ($arch) in $bin_dir from $url"
fi`;
}

/**
 * `source: apt`. With `etcd.version` set, the distribution's etcd must have its major.minor; without
 * it, any etcd at least MIN_EXTERNAL_ETCD_VERSION (the oldest external etcd kubeadm accepts). Both
 * are checked against apt's candidate before anything is installed, and against the installed
 * binary afterwards.
 */
function aptBody(e: EtcdSpec, paths: EtcdPaths): string {
  const etcdBin = etcdBinary("apt", paths);
  const accept =
    e.version !== undefined
      ? `want=${shq(e.version)} want_minor=${shq(majorMinor(e.version))}
# etcd_accept VERSION WHAT: the distribution's etcd is the configured major.minor
etcd_accept() {
  case "$1" in
    "$want_minor".*) return 0 ;;
    *) hakube_fail "the distribution's etcd-server is \${1:-unknown}$2, but etcd.version is $want (needs $want_minor.x): set etcd.version to match, or use etcd.source download" ;;
  esac
}`
      : `min=${shq(MIN_EXTERNAL_ETCD_VERSION)}
# etcd_accept VERSION WHAT: etcd.version is not set: the distribution's etcd, if kubeadm accepts it
etcd_accept() {
  if [ -z "$1" ] || ! printf '%s\\n' "$min" "$1" | sort -V -C; then
    hakube_fail "the distribution's etcd-server is \${1:-unknown}$2, older than $min, the oldest external etcd kubeadm accepts: use etcd.source download (etcd ${DEFAULT_ETCD_VERSION} by default), or set etcd.version to \${1:-it} for an etcd-only cluster"
  fi
}`;
  return `${accept}
# the upstream part of a Debian version: 1:3.5.16-4+b1 -> 3.5.16
upstream_version() { local v=\${1#*:}; echo "\${v%%[-+~]*}"; }
missing=()
for p in etcd-server etcd-client; do
  dpkg-query -W -f='\${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ "\${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  candidate() { { apt-cache policy etcd-server 2>/dev/null || true; } | awk '$1 == "Candidate:" && !v { v = $2 } END { print v }'; }
  cand=$(candidate)
  if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then
    apt-get -q -o DPkg::Lock::Timeout=300 update >/dev/null </dev/null || hakube_fail "apt-get update failed"
    cand=$(candidate)
  fi
  { [ -n "$cand" ] && [ "$cand" != "(none)" ]; } || hakube_fail "the distribution has no etcd-server package (apt-cache policy etcd-server): use etcd.source download"
  etcd_accept "$(upstream_version "$cand")" " (apt's candidate; nothing installed)"
  # The package enables and starts its own single-node etcd.service on installation. Our unit
  # (written by the member step) replaces it; until then a runtime mask keeps it from starting.
  masked=""
  if [ -d /run/systemd/system ] && [ ! -e ${shq(paths.unitFile)} ]; then
    systemctl mask --runtime --quiet ${UNIT_NAME}
    masked=1
    trap '[ -z "$masked" ] || systemctl unmask --runtime --quiet ${UNIT_NAME} || true' EXIT
  fi
  hakube_apt_install etcd-server etcd-client
  if [ -n "$masked" ]; then
    systemctl unmask --runtime --quiet ${UNIT_NAME}
    masked=""
    # the package's unit was enabled while masked: disabled until our own unit replaces it
    systemctl disable --quiet ${UNIT_NAME} 2>/dev/null || true
  fi
fi
have=$({ ${shq(etcdBin)} --version 2>/dev/null || true; } | awk '/^etcd Version:/ && !v { v = $3 } END { print v }')
etcd_accept "$have" ""
echo "ok: etcd $have from the distribution (etcd-server, etcd-client)"
[ -x ${shq(`${paths.distBinDir}/etcdctl`)} ] || hakube_fail "etcdctl is missing after installing etcd-client"`;
}

function preinstalledBody(e: EtcdSpec): string {
  const mm = majorMinor(pinned(e));
  return `want=${shq(pinned(e))} want_minor=${shq(mm)}
command -v etcd >/dev/null 2>&1 || hakube_fail "etcd is not installed (etcd.source is preinstalled: put etcd $want_minor.x in /usr/local/bin or /usr/bin)"
command -v etcdctl >/dev/null 2>&1 || hakube_fail "etcdctl is not installed (etcd.source is preinstalled; the health checks need it)"
have=$({ etcd --version 2>/dev/null || true; } | awk '/^etcd Version:/ && !v { v = $3 } END { print v }')
case "$have" in
  "$want_minor".*) echo "ok: preinstalled etcd $have ($(command -v etcd))" ;;
  *) hakube_fail "preinstalled etcd ($(command -v etcd)) reports version \${have:-unknown}, but etcd.version is $want (needs $want_minor.x)" ;;
esac`;
}

/** The install step: the etcd user, then the binaries for the configured source. Idempotent. */
export function renderInstallScript(i: InstallInput): string {
  const paths = i.paths ?? DEFAULT_PATHS;
  const e = i.etcd;
  const body = e.source === "download" ? downloadBody(e, paths) : e.source === "apt" ? aptBody(e, paths) : preinstalledBody(e);
  // with deployment kubeadm the member runs from the image as kubeadm's pod does (root); the host's
  // binaries are etcdctl and etcdutl for the health checks and the operator (etcd is installed too)
  const user =
    e.deployment === "kubeadm"
      ? "# etcd.deployment kubeadm: the member runs from its image; these binaries serve etcdctl and etcdutl on the host"
      : `if ! getent passwd etcd >/dev/null; then
  getent group etcd >/dev/null || groupadd --system etcd
  useradd --system --gid etcd --home-dir ${shq(e.dataDir)} --no-create-home --shell /usr/sbin/nologin --comment "etcd (hakube)" etcd
  echo "created system user etcd"
fi`;
  return `# install etcd ${e.version ?? `(the distribution's, at least ${MIN_EXTERNAL_ETCD_VERSION})`} (source: ${e.source})
${user}
${body}
`;
}

/* ------------------------------------------------------------------ health checks (shared bash) */

export interface HealthInput {
  members: EtcdMember[];
  paths?: EtcdPaths;
  /** etcdctl's per-request bound (seconds): a dead member costs this much per check. Default 5. */
  commandTimeoutSeconds?: number;
  /** TLS files for the checks: default the installed ones in pkiDir. */
  tlsDir?: string;
}

/**
 * Bash functions: `etcd_check` (every configured member joined and healthy; problems named in
 * `$etcd_problems`) and `etcd_wait SECONDS WHAT`. etcd 3.4 lists statically bootstrapped members
 * by name before they ever ran; a member has joined once it published its client URLs.
 */
export function healthFunctions(h: HealthInput): string {
  const paths = h.paths ?? DEFAULT_PATHS;
  const dir = h.tlsDir ?? paths.pkiDir;
  const members = byName(h.members);
  const endpoints = members.map(clientUrl).join(",");
  const nameCase = members.map((m) => `    ${shq(clientUrl(m))}) echo ${shq(m.name)} ;;`).join("\n");
  const expected = members.map((m) => `${m.name} ${peerUrl(m)}`).join("\n");
  const eof = heredocDelimiter(expected, "HAKUBE_MEMBERS");
  return `etcd_endpoints=${shq(endpoints)}
etcd_peers=${shq(sortedPeerUrls(h.members).join(" "))}
etcd_tls=(--cacert=${shq(`${dir}/${PKI_FILES.ca}`)} --cert=${shq(`${dir}/${PKI_FILES.healthcheckCert}`)} --key=${shq(`${dir}/${PKI_FILES.healthcheckKey}`)} --dial-timeout=2s --command-timeout=${h.commandTimeoutSeconds ?? 5}s)
# etcd_member_name URL: the configured member behind a client URL
etcd_member_name() {
  case "$1" in
${nameCase}
    *) echo "unknown member" ;;
  esac
}
# etcd_check [ENDPOINT]: every configured member joined and healthy (or just ENDPOINT); problems in $etcd_problems
etcd_check() {
  local list health line url name peer ok=0 problems=()
  etcd_problems=""
  if [ -n "\${1:-}" ]; then
    if ! health=$(etcdctl "\${etcd_tls[@]}" --endpoints="$1" endpoint health 2>&1); then
      etcd_problems="$(etcd_member_name "$1") ($1): $(printf '%s\\n' "$health" | grep -v '^{' | grep -m1 . || echo "no answer")"
      return 1
    fi
    return 0
  fi
  if ! list=$(etcdctl "\${etcd_tls[@]}" --endpoints="$etcd_endpoints" member list -w simple 2>&1); then
    etcd_problems="no member answers (member list: $(printf '%s\\n' "$list" | grep -v '^{' | tail -n 1))"
    return 1
  fi
  while read -r name peer; do
    line=$(printf '%s\\n' "$list" | awk -F', ' -v p="$peer" '{ n = split($4, u, ","); for (i = 1; i <= n; i++) if (u[i] == p) print }')
    if [ -z "$line" ]; then
      problems+=("$name ($peer) is not a member of the cluster")
    elif [ -z "$(printf '%s\\n' "$line" | awk -F', ' '{ print $5 }')" ]; then
      problems+=("$name has not joined the cluster yet (never started, or cannot reach its peers)")
    fi
  done <<'${eof}'
${expected}
${eof}
  for peer in $(printf '%s\\n' "$list" | awk -F', ' '{ print $4 }' | tr ',' ' '); do
    case " $etcd_peers " in *" $peer "*) ;; *) problems+=("the cluster has a member the configuration does not list ($peer)") ;; esac
  done
  health=$(etcdctl "\${etcd_tls[@]}" --endpoints="$etcd_endpoints" endpoint health --cluster 2>&1) || true
  while IFS= read -r line; do
    case "$line" in
      *" is healthy: "*) ok=$((ok + 1)) ;;
      *" is unhealthy: "*)
        url=\${line%% is unhealthy: *}
        problems+=("$(etcd_member_name "$url") ($url): \${line#* is unhealthy: }") ;;
    esac
  done <<<"$health"
  if [ "$ok" -eq 0 ] && [ "\${#problems[@]}" -eq 0 ]; then
    problems+=("endpoint health: $(printf '%s\\n' "$health" | grep -v '^{' | tail -n 1)")
  fi
  if [ "\${#problems[@]}" -gt 0 ]; then
    etcd_problems=\${problems[0]}
    for line in "\${problems[@]:1}"; do etcd_problems="$etcd_problems; $line"; done
    return 1
  fi
}
# etcd_wait SECONDS WHAT [ENDPOINT]: retry etcd_check every second; fail naming the problems
etcd_wait() {
  local limit=$1 what=$2 end=$((SECONDS + $1))
  until etcd_check "\${3:-}"; do
    [ "$SECONDS" -lt "$end" ] || hakube_fail "$what: etcd not healthy after \${limit}s: $etcd_problems"
    sleep 1
  done
}`;
}

/* ------------------------------------------------------------------ member */

export interface MemberScriptInput extends Omit<StampInput, "source"> {
  member: EtcdMember;
  members: EtcdMember[];
  clusterName: string;
  dataDir: string;
  /** The Command's resource name: recorded on the host so only the current owner's delete stops etcd. */
  owner: string;
  stamp: string;
  paths?: EtcdPaths;
  waits?: Partial<Record<keyof typeof WAITS, number>>;
}

export function stageFile(name: string, content: string): string {
  const text = content.endsWith("\n") ? content : content + "\n";
  const eof = heredocDelimiter(text, "HAKUBE_FILE");
  return `cat > "$stage/${name}" <<'${eof}'\n${text}${eof}`;
}

/** The deployments; recorded on each member host (`$stateDir/deployment`) so a switch is refused. */
export type EtcdDeployment = EtcdSpec["deployment"];

/** Bash: the member's variables and the health-check functions. */
export function memberPreamble(m: MemberScriptInput, paths: EtcdPaths, deployment: EtcdDeployment): string {
  const others = byName(m.members).filter((x) => x.name !== m.member.name);
  return `# etcd member ${m.member.name} of hakube cluster ${m.clusterName} (etcd.deployment ${deployment})
# content stamp ${m.stamp}
member=${shq(m.member.name)}
data_dir=${shq(m.dataDir)}
state_dir=${shq(paths.stateDir)}
stamp=${shq(m.stamp)}
owner=${shq(m.owner)}
want_cluster=${shq(initialCluster(m.members))}
self_peer=${shq(peerUrl(m.member))}
self_client=${shq(clientUrl(m.member))}
others=${shq(others.map(clientUrl).join(","))}
${healthFunctions({ members: m.members, paths })}`;
}

/**
 * Bash: refuse to run a member with `deployment` on a host where hakube runs it the other way
 * (recorded in `$state_dir/deployment`; hosts from before the record have only `applied`: systemd).
 * Switching is a migration (a new data path, a new supervisor), never done in place.
 */
export function deploymentGuard(deployment: EtcdDeployment): string {
  const other = deployment === "systemd" ? "kubeadm" : "systemd";
  const how = other === "systemd" ? "as hakube's systemd unit etcd.service" : "as a static pod of a standalone kubelet";
  return `# 0. The deployment must not change under a running member (a migration, not an update).
recorded_deployment=$(cat "$state_dir/deployment" 2>/dev/null || true)
[ -n "$recorded_deployment" ] || { [ ! -s "$state_dir/applied" ] || recorded_deployment=systemd; }
if [ "$recorded_deployment" = ${other} ]; then
  hakube_fail "etcd runs on $member ${how} (etcd.deployment ${other}); switching a cluster to etcd.deployment ${deployment} is a migration hakube does not do (docs/etcd.md, Deployment): set etcd.deployment back to ${other} (nothing was changed on this host)"
fi`;
}

/** Bash: stage the certificates and keys in a private directory ($stage) and validate them. */
export function stageCertificates(m: MemberScriptInput): string {
  const secretIndex = (k: (typeof MEMBER_SECRETS)[number]) => MEMBER_SECRETS.indexOf(k);
  return `stage=$(mktemp -d /run/hakube-etcd.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$stage"' EXIT
${stageFile(PKI_FILES.ca, m.caCertPem)}
${stageFile(PKI_FILES.serverCert, m.serverCertPem)}
${stageFile(PKI_FILES.peerCert, m.peerCertPem)}
${stageFile(PKI_FILES.healthcheckCert, m.healthcheckCertPem)}
hakube_put_stdin ${secretIndex("serverKey")} "$stage/${PKI_FILES.serverKey}" 0600 root root >/dev/null
hakube_put_stdin ${secretIndex("peerKey")} "$stage/${PKI_FILES.peerKey}" 0600 root root >/dev/null
hakube_put_stdin ${secretIndex("healthcheckKey")} "$stage/${PKI_FILES.healthcheckKey}" 0600 root root >/dev/null

# check_pair NAME PURPOSE...: NAME.crt parses, NAME.key is its key, it chains to the etcd CA for each purpose
check_pair() {
  local n=$1 purpose
  shift
  openssl x509 -in "$stage/$n.crt" -noout 2>/dev/null || hakube_fail "$n.crt is not a PEM certificate"
  [ "$(openssl x509 -in "$stage/$n.crt" -noout -pubkey 2>/dev/null)" = "$(openssl pkey -in "$stage/$n.key" -pubout 2>/dev/null)" ] \\
    || hakube_fail "$n.key is not the key of $n.crt"
  for purpose in "$@"; do
    openssl verify -CAfile "$stage/${PKI_FILES.ca}" -purpose "$purpose" "$stage/$n.crt" >/dev/null 2>&1 \\
      || hakube_fail "$n.crt does not verify against the etcd CA for $purpose: $(openssl verify -CAfile "$stage/${PKI_FILES.ca}" -purpose "$purpose" "$stage/$n.crt" 2>&1 | grep -m1 -i error || true)"
  done
}
check_pair server sslserver sslclient
check_pair peer sslserver sslclient
check_pair healthcheck-client sslclient`;
}

/** Bash: section 2, the member-list rules (uses the staged certificates). Sets $fresh. */
export function membershipChecks(m: MemberScriptInput): string {
  return `# 2. Membership: this code bootstraps a fixed member list and never changes a running cluster's.
if [ -d "$data_dir/member" ]; then
  fresh=0
  recorded=$(cat "$state_dir/initial-cluster" 2>/dev/null || true)
  if [ -z "$recorded" ]; then
    hakube_fail "$data_dir/member holds etcd data hakube did not bootstrap (kept by an earlier destroy, or another etcd): refusing to start $member on it; move $data_dir away to bootstrap a new member"
  elif [ "$recorded" != "$want_cluster" ]; then
    hakube_fail "the etcd member list changed: $member was bootstrapped with $recorded, the configuration now says $want_cluster; adding, removing or re-addressing members is not supported yet (docs/etcd.md): restore the previous hosts (nothing was changed on this host)"
  fi
else
  fresh=1
  # Is a cluster already running at the other members? (No query when no client port even accepts TCP.)
  listening=""
  for ep in \${others//,/ }; do
    hp=\${ep#https://}
    if timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "\${hp%:*}" "\${hp##*:}" 2>/dev/null; then listening=1; break; fi
  done
  if [ -n "$listening" ] && listing=$(etcdctl --cacert="$stage/${PKI_FILES.ca}" --cert="$stage/${PKI_FILES.healthcheckCert}" --key="$stage/${PKI_FILES.healthcheckKey}" \\
       --dial-timeout=2s --command-timeout=2s --endpoints="$others" member list -w simple 2>/dev/null); then
    have=$(printf '%s\\n' "$listing" | awk -F', ' '{ n = split($4, u, ","); for (i = 1; i <= n; i++) print u[i] }' | sort -u | paste -sd' ')
    want=${shq(sortedPeerUrls(m.members).join(" "))}
    [ "$have" = "$want" ] || hakube_fail "an etcd cluster already runs at $others with peers $have, but the configuration lists $want; adding or removing members is not supported yet (docs/etcd.md): refusing to start $member"
    joined=$(printf '%s\\n' "$listing" | awk -F', ' -v p="$self_peer" '{ n = split($4, u, ","); for (i = 1; i <= n; i++) if (u[i] == p) print $5 }')
    [ -z "$joined" ] || hakube_fail "$member has run in this cluster before but $data_dir/member is missing (data removed, or etcd.dataDir changed): refusing to start it as a new member"
  fi
fi`;
}

/** Bash: before a rolling restart, refuse a version change etcd does not support (one minor up at a time, no downgrade). */
export function versionStepCheck(m: Pick<MemberScriptInput, "version">, paths: EtcdPaths): string {
  return `# etcd upgrades one minor at a time and never downgrades: refuse before taking the member down
running=$(etcdctl "\${etcd_tls[@]}" --endpoints="$self_client" endpoint status -w simple 2>/dev/null | awk -F', ' 'NR == 1 { print $3 }')
target=${m.version !== undefined ? shq(majorMinor(m.version)) : `$({ ${etcdBinary("apt", paths)} --version 2>/dev/null || true; } | awk '/^etcd Version:/ && !v { split($3, p, "."); v = p[1] "." p[2] } END { print v }')  # the distribution's etcd (etcd.version not set)`}
if [ -n "$running" ]; then
  r_minor=\${running#*.}; r_minor=\${r_minor%%.*}; t_minor=\${target#*.}
  if [ "\${running%%.*}" != "\${target%%.*}" ] || [ "$t_minor" -lt "$r_minor" ] || [ "$t_minor" -gt "$((r_minor + 1))" ]; then
    hakube_fail "$member runs etcd $running; going to $target is not a supported upgrade (one minor version at a time, no downgrades): nothing restarted"
  fi
fi`;
}

/** Bash: record the bootstrap member list (a fresh member) and the deployment. */
export function recordMember(deployment: EtcdDeployment): string {
  return `printf '%s\\n' ${deployment} | hakube_put "$state_dir/deployment" 0644 root root >/dev/null`;
}

/**
 * The member step: stage → validate → refuse member-list changes → swap in → start or rolling
 * restart. Secret payloads on stdin, in `MEMBER_SECRETS` order.
 */
export function renderMemberScript(m: MemberScriptInput): string {
  const paths = m.paths ?? DEFAULT_PATHS;
  const waits = { ...WAITS, ...(m.waits ?? {}) };
  const pki = (f: string) => shq(`${paths.pkiDir}/${f}`);
  return `${memberPreamble(m, paths, "systemd")}
${deploymentGuard("systemd")}

# 1. Stage every file in a private directory and validate it: nothing is swapped in before all checks pass.
${stageCertificates(m)}
${stageFile("etcd.conf.yml", m.config)}
${stageFile(UNIT_NAME, m.unit)}
getent passwd etcd >/dev/null || hakube_fail "user etcd does not exist (the install step creates it)"

${membershipChecks(m)}

# 3. Swap the validated files in (each atomically, only when different).
unit_changed=0
cmp -s "$stage/${UNIT_NAME}" ${shq(paths.unitFile)} || unit_changed=1
hakube_dir ${shq(paths.configDir)} 0755 root root
hakube_dir ${shq(paths.pkiDir)} 0755 root root
hakube_put ${pki(PKI_FILES.ca)} 0644 root root < "$stage/${PKI_FILES.ca}"
hakube_put ${pki(PKI_FILES.serverCert)} 0644 root root < "$stage/${PKI_FILES.serverCert}"
hakube_put ${pki(PKI_FILES.serverKey)} 0600 etcd etcd < "$stage/${PKI_FILES.serverKey}"
hakube_put ${pki(PKI_FILES.peerCert)} 0644 root root < "$stage/${PKI_FILES.peerCert}"
hakube_put ${pki(PKI_FILES.peerKey)} 0600 etcd etcd < "$stage/${PKI_FILES.peerKey}"
hakube_put ${pki(PKI_FILES.healthcheckCert)} 0644 root root < "$stage/${PKI_FILES.healthcheckCert}"
hakube_put ${pki(PKI_FILES.healthcheckKey)} 0600 root root < "$stage/${PKI_FILES.healthcheckKey}"
hakube_put ${shq(paths.configFile)} 0644 root root < "$stage/etcd.conf.yml"
hakube_put ${shq(paths.unitFile)} 0644 root root < "$stage/${UNIT_NAME}"
hakube_dir "$data_dir" 0700 etcd etcd
hakube_dir "$state_dir" 0755 root root
printf '%s\\n' "$owner" | hakube_put "$state_dir/owner" 0644 root root
${recordMember("systemd")}

# 4. systemd: reload when the unit changed, enable at boot.
if [ "$unit_changed" = 1 ] || [ "$(systemctl show -p NeedDaemonReload --value ${UNIT_NAME} 2>/dev/null || true)" = yes ]; then
  systemctl daemon-reload
  echo "reloaded systemd units"
fi
if ! systemctl is-enabled --quiet ${UNIT_NAME} 2>/dev/null; then
  systemctl enable --quiet ${UNIT_NAME}
  echo "enabled ${UNIT_NAME}"
fi

# 5. Start or restart, decided by the stamp of what the running member was started with.
applied=$(cat "$state_dir/applied" 2>/dev/null || true)
state=$(systemctl is-active ${UNIT_NAME} 2>/dev/null || true)
if [ "$state" = active ] && [ "$applied" = "$stamp" ]; then
  echo "ok: $member runs the current configuration"
elif [ "$state" = active ] && [ -n "$applied" ]; then
  # Rolling restart (the member steps run one host at a time): never take a second member down.
  etcd_wait ${waits.beforeRestart} "before restarting $member (restarting now could lose the quorum)"
${versionStepCheck(m, paths).replace(/^/gm, "  ")}
  t0=$SECONDS
  old_pid=$(systemctl show -p MainPID --value ${UNIT_NAME})
  echo "restarting $member (configuration, certificates or binary changed)"
  systemctl restart --no-block ${UNIT_NAME}
  # the old process must be gone and the new one ready (Type=notify: it joined) before any health check counts
  until [ "$(systemctl show -p MainPID --value ${UNIT_NAME})" != "$old_pid" ] && [ "$(systemctl is-active ${UNIT_NAME} || true)" = active ]; do
    [ "$SECONDS" -lt "$((t0 + ${waits.afterRestart}))" ] || hakube_fail "${UNIT_NAME} did not come back within ${waits.afterRestart}s of the restart (journalctl -u ${UNIT_NAME})"
    sleep 1
  done
  etcd_wait ${waits.afterRestart} "after restarting $member" "$self_client"
  etcd_wait ${waits.afterRestart} "after restarting $member"
  printf '%s\\n' "$stamp" | hakube_put "$state_dir/applied" 0644 root root >/dev/null
  echo "restarted $member: it and the cluster are healthy again after $((SECONDS - t0))s"
else
  # Not serving our cluster: first start, stopped, failed, still waiting for its peers, or an
  # etcd.service hakube never started (e.g. the distribution's default single-node one).
  # Starting it takes no serving member down. Never wait here: the first member of a new
  # cluster waits for a quorum (the health gate waits).
  if [ "$fresh" = 1 ]; then
    printf '%s\\n' "$want_cluster" | hakube_put "$state_dir/initial-cluster" 0644 root root >/dev/null
  fi
  systemctl reset-failed ${UNIT_NAME} 2>/dev/null || true
  if [ "$state" = activating ] && [ "$applied" = "$stamp" ]; then
    echo "ok: $member is starting"
  elif [ "$state" = active ] || [ "$state" = activating ]; then
    systemctl restart --no-block ${UNIT_NAME}
    echo "restarted $member ($state, but not running this configuration yet)"
  else
    systemctl start --no-block ${UNIT_NAME}
    echo "started $member ($state before); the health gate waits for the cluster"
  fi
  printf '%s\\n' "$stamp" | hakube_put "$state_dir/applied" 0644 root root >/dev/null
fi
`;
}

/**
 * The member step's delete (destroy, or the host leaves the etcd role): stop and disable etcd,
 * remove our unit, config and keys, keep the data directory. Runs only when this resource still
 * owns the member (a renamed step's new resource takes over before the old one is deleted).
 */
export function renderMemberDeleteScript(d: { owner: string; dataDir: string; paths?: EtcdPaths }): string {
  const paths = d.paths ?? DEFAULT_PATHS;
  const files = [
    paths.unitFile,
    paths.configFile,
    ...Object.values(PKI_FILES).map((f) => `${paths.pkiDir}/${f}`),
    ...STATE_FILES.map((f) => `${paths.stateDir}/${f}`),
  ];
  return `# stop etcd on this host; its data directory ${d.dataDir} is kept
owner=${shq(d.owner)}
current=$(cat ${shq(`${paths.stateDir}/owner`)} 2>/dev/null || true)
if [ -n "$current" ] && [ "$current" != "$owner" ]; then
  echo "etcd here is managed by $current now: left running"
  exit 0
fi
state=$(systemctl is-active ${UNIT_NAME} 2>/dev/null || true)
case "$state" in
  inactive|failed|"") ;;
  *) systemctl stop ${UNIT_NAME}; echo "stopped ${UNIT_NAME}" ;;
esac
if systemctl is-enabled --quiet ${UNIT_NAME} 2>/dev/null; then
  systemctl disable --quiet ${UNIT_NAME}
  echo "disabled ${UNIT_NAME}"
fi
unit_present=0
[ ! -e ${shq(paths.unitFile)} ] || unit_present=1
hakube_remove ${shqAll(files)}
rmdir --ignore-fail-on-non-empty ${shq(paths.pkiDir)} ${shq(paths.configDir)} 2>/dev/null || true
if [ "$unit_present" = 1 ]; then
  systemctl daemon-reload
  # the distribution's own etcd.service (etcd.source apt) is visible again: keep it off
  if systemctl is-enabled --quiet ${UNIT_NAME} 2>/dev/null; then systemctl disable --quiet ${UNIT_NAME}; fi
fi
systemctl reset-failed ${UNIT_NAME} 2>/dev/null || true
echo "etcd stopped and disabled; data kept in ${d.dataDir}"
`;
}

/* ------------------------------------------------------------------ health gate */

export interface GateInput {
  members: EtcdMember[];
  clusterName: string;
  /** member name → content stamp: the gate runs again whenever a member changed */
  stamps: Record<string, string>;
  paths?: EtcdPaths;
  timeoutSeconds?: number;
  commandTimeoutSeconds?: number;
}

export function renderHealthGateScript(g: GateInput): string {
  const members = byName(g.members);
  const timeout = g.timeoutSeconds ?? WAITS.gate;
  return `# etcd health gate of hakube cluster ${g.clusterName}: every member joined and healthy
${members.map((m) => `# ${m.name} ${g.stamps[m.name] ?? ""}`).join("\n")}
${healthFunctions({ members: g.members, paths: g.paths, commandTimeoutSeconds: g.commandTimeoutSeconds })}
t0=$SECONDS
etcd_wait ${timeout} "health gate"
echo "etcd cluster healthy (${members.length} members) after $((SECONDS - t0))s"
etcdctl "\${etcd_tls[@]}" --endpoints="$etcd_endpoints" endpoint status --cluster -w table \\
  || hakube_fail "etcdctl endpoint status failed although every member was healthy"
`;
}
