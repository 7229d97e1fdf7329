/**
 * LoadBalancerPair rendering. Pure: no Pulumi import. Plain typed values in, file text and
 * bash step bodies out: haproxy.cfg, nginx.conf, keepalived.conf, the keepalived check script
 * and the three steps every load-balancer host runs (`packages`, `proxy`, `keepalived`).
 *
 * Design (docs/loadbalancer.md has the reasoning and the numbers):
 * - the frontends bind the wildcard address (`0.0.0.0:<port>`), so the same config works on the
 *   host that holds the VIP and on the ones that do not, a stale VIP left on a crashed master
 *   still serves, and no `net.ipv4.ip_nonlocal_bind` is needed;
 * - HAProxy health-checks every API server over TLS, verifying its certificate against our
 *   Kubernetes CA and the `kubernetes` SAN (`check-ssl verify required ca-file … verifyhost`);
 * - each engine serves a tiny local health endpoint on 127.0.0.1:<healthPort> that never
 *   touches the backends; keepalived's check script probes it (and that the frontend ports
 *   listen), so the VIP leaves a host whose engine is dead but stays put when every API
 *   server is down;
 * - VRRPv3, advert 0.2 s, unicast by default, all instances BACKUP + `nopreempt`.
 */
import { isIPv4 } from "../config/spec";
import { LB_HEALTH_PORT } from "../config/defaults";
import { heredocDelimiter, shq, shqAll } from "../remote/shell";

export { LB_HEALTH_PORT };

/* ------------------------------------------------------------------ constants */

/** VRRP advertisement interval (VRRPv3 centiseconds: 0.2 s). */
export const VRRP_ADVERT_SECONDS = 0.2;
/**
 * Base priority of the first load balancer; each next one (host order) is 1 lower (at most
 * `MAX_LOAD_BALANCERS`: 200 … 181). The spread (≤ 19) stays below `HOLDER_BONUS`.
 */
export const VRRP_TOP_PRIORITY = 200;
export const VRRP_PRIORITY_STEP = 1;
export const MAX_LOAD_BALANCERS = 20;
/**
 * The holder's bonus: while an instance is MASTER its notify script writes 1 into the holder
 * file (`track_file`, × this weight), else 0. A holder (base + 50) therefore outranks every
 * healthy backup (≤ base 200), so preemption is on and still no backup takes a healthy holder's
 * VIP: a recovered host does not take the VIP back.
 */
export const HOLDER_BONUS = 50;
/**
 * keepalived check script: interval and timeout (whole seconds in keepalived 2.2), fall, rise,
 * and the weight a failing check subtracts from the priority. It never puts the instance in
 * FAULT: a busy machine whose checks time out only lowers priorities, and a sick holder (base
 * + bonus − 100 ≤ 150) falls below every healthy backup (≥ 181), which then preempts. When every
 * load balancer's check fails (load), the holder keeps the highest priority: the VIP stays.
 * `readTimeoutS`: the script's own wait for the engine's answer (below keepalived's timeout, so
 * the script decides, not a SIGTERM).
 */
export const CHECK = { interval: 1, timeout: 4, readTimeoutS: 3, fall: 2, rise: 2, weight: -100 } as const;
/**
 * HAProxy active checks of the API servers. A refused connection fails at once, a silent
 * (powered-off) server after `timeout check`; after the first failure the checks run every
 * `fastinter`; `fall` failures mark the server DOWN (worst cases in `apiServerMarkDownBoundMs`).
 */
export const APISERVER_CHECK = { interMs: 1000, fastinterMs: 500, downinterMs: 2000, timeoutMs: 1000, fall: 3, rise: 2 } as const;
/** Ingress backends (plain TCP connect checks). */
export const INGRESS_CHECK = { interMs: 2000, fastinterMs: 1000, downinterMs: 5000, fall: 2, rise: 2 } as const;
/** Idle timeout of proxied connections: long enough for API watches (the API server ends them within 30–60 min). */
export const IDLE_TIMEOUT = "1h";
/** A DNS SAN kubeadm's apiserver certificate always carries (with kubernetes.default[.svc[.<domain>]]): the checks verify it. */
export const APISERVER_CERT_NAME = "kubernetes";
/** Dedicated unprivileged user for keepalived's scripts (keepalived's own default name). */
export const KEEPALIVED_SCRIPT_USER = "keepalived_script";

/** Where things live on a load-balancer host. Tests substitute paths; the hosts get the defaults. */
export interface LbPaths {
  haproxyConfig: string;
  /** The Kubernetes CA certificate HAProxy verifies the API servers with. */
  caFile: string;
  /** HAProxy's local admin socket (`socat stdio /run/haproxy/admin.sock <<< "show stat"`). */
  statsSocket: string;
  /** HAProxy's chroot (null: none). */
  chroot: string | null;
  nginxConfig: string;
  nginxPid: string;
  nginxErrorLog: string;
  nginxAccessLog: string;
  nginxStreamModule: string;
  keepalivedConfig: string;
  checkScript: string;
  /** keepalived's notify script (writes the holder file on every state change). */
  notifyScript: string;
  /** 1 while this host's instance is MASTER, else 0 (keepalived tracks it: the holder bonus). */
  holderFile: string;
  /** Stamps of the applied configuration (a re-run reloads only when it differs). */
  stateDir: string;
}

export const DEFAULT_PATHS: LbPaths = {
  haproxyConfig: "/etc/haproxy/haproxy.cfg",
  caFile: "/etc/haproxy/hakube-kubernetes-ca.crt",
  statsSocket: "/run/haproxy/admin.sock",
  chroot: "/var/lib/haproxy",
  nginxConfig: "/etc/nginx/nginx.conf",
  nginxPid: "/run/nginx.pid",
  nginxErrorLog: "/var/log/nginx/error.log",
  nginxAccessLog: "/var/log/nginx/hakube-stream.log",
  nginxStreamModule: "/usr/lib/nginx/modules/ngx_stream_module.so",
  keepalivedConfig: "/etc/keepalived/keepalived.conf",
  checkScript: "/etc/keepalived/hakube-check-lb.sh",
  notifyScript: "/etc/keepalived/hakube-notify.sh",
  holderFile: "/run/hakube-keepalived.holder",
  stateDir: "/var/lib/hakube/loadbalancer",
};

/** The account the engine's workers run as (null: stay as the invoking user, tests only). */
export interface RunAs {
  user: string;
  group: string;
}
export const ENGINE_USERS: Record<Engine, RunAs> = {
  haproxy: { user: "haproxy", group: "haproxy" },
  nginx: { user: "www-data", group: "www-data" },
};

/* ------------------------------------------------------------------ input */

export type Engine = "haproxy" | "nginx";
export type VrrpMode = "unicast" | "multicast";

export interface Backend {
  /** host name (server name in the config) */
  name: string;
  address: string;
  port: number;
}

export interface IngressPort {
  port: number;
  nodePort: number;
}

export interface LbInput {
  clusterName: string;
  engine: Engine;
  vip: string;
  vipPrefix: number;
  interface: string;
  virtualRouterId: number;
  /** API frontend port. */
  port: number;
  ingress?: { http?: IngressPort; https?: IngressPort };
  /** The load-balancer hosts, in host order (it decides the VRRP priorities). */
  lbHosts: { name: string; internalAddress: string }[];
  /** The API servers (control planes' internalAddress:6443). */
  apiServers: Backend[];
  /** Ingress backends: every worker's internalAddress (the nodePort is added). */
  workers: { name: string; address: string }[];
  vrrp?: VrrpMode;
  healthPort?: number;
  paths?: Partial<LbPaths>;
  /** Override the engine's worker account (tests; null keeps the invoking user). */
  runAs?: RunAs | null;
  /** keepalived script user (tests substitute an existing one). */
  scriptUser?: string;
}

/* ------------------------------------------------------------------ validation of values */

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const IFACE = /^[A-Za-z0-9_.:@-]{1,15}$/;
const PATH = /^\/[A-Za-z0-9_.\/@+-]*$/;
const USER = /^[a-z_][a-z0-9_.-]{0,31}$/;

function bad(what: string, v: unknown): never {
  throw new Error(`hakube: loadBalancer: invalid ${what} ${JSON.stringify(v)}`);
}
const ip = (what: string, s: string) => (isIPv4(s) ? s : bad(what, s));
const name = (what: string, s: string) => (NAME.test(s) ? s : bad(what, s));
const int = (what: string, n: number, min: number, max: number) => (Number.isInteger(n) && n >= min && n <= max ? n : bad(what, n));
const path = (what: string, s: string) => (PATH.test(s) && !s.split("/").includes("..") ? s : bad(what, s));
const user = (what: string, s: string) => (USER.test(s) ? s : bad(what, s));

/** A fully checked, defaulted view of the input. Every value that reaches a config passed a strict pattern. */
export interface Resolved {
  clusterName: string;
  engine: Engine;
  vip: string;
  vipPrefix: number;
  interface: string;
  virtualRouterId: number;
  port: number;
  ingress: { kind: "http" | "https"; port: number; nodePort: number }[];
  lbHosts: { name: string; internalAddress: string; priority: number }[];
  apiServers: Backend[];
  workers: { name: string; address: string }[];
  vrrp: VrrpMode;
  healthPort: number;
  paths: LbPaths;
  runAs: RunAs | null;
  scriptUser: string;
  /** Every port the engine listens on for clients (API first). */
  frontendPorts: number[];
}

export function vrrpPriority(index: number): number {
  if (index >= MAX_LOAD_BALANCERS) throw new Error(`hakube: loadBalancer: at most ${MAX_LOAD_BALANCERS} load balancers are supported`);
  return VRRP_TOP_PRIORITY - VRRP_PRIORITY_STEP * index;
}

export function resolve(i: LbInput): Resolved {
  if (i.engine !== "haproxy" && i.engine !== "nginx") bad("engine", i.engine);
  const vrrp = i.vrrp ?? "unicast";
  if (vrrp !== "unicast" && vrrp !== "multicast") bad("vrrp mode", vrrp);
  if (!i.lbHosts.length) throw new Error("hakube: loadBalancer: no host has role loadbalancer");
  if (!i.apiServers.length) throw new Error("hakube: loadBalancer: no API servers (hosts with role controlplane)");
  const paths = { ...DEFAULT_PATHS, ...(i.paths ?? {}) };
  for (const [k, v] of Object.entries(paths)) if (v !== null) path(`path ${k}`, v);
  const ingress: Resolved["ingress"] = [];
  for (const kind of ["http", "https"] as const) {
    const p = i.ingress?.[kind];
    if (p) ingress.push({ kind, port: int(`ingress.${kind}.port`, p.port, 1, 65535), nodePort: int(`ingress.${kind}.nodePort`, p.nodePort, 1, 65535) });
  }
  if (ingress.length && !i.workers.length) throw new Error("hakube: loadBalancer: ingress needs at least one worker");
  const port = int("port", i.port, 1, 65535);
  const healthPort = int("health port", i.healthPort ?? LB_HEALTH_PORT, 1, 65535);
  const frontendPorts = [port, ...ingress.map((x) => x.port)];
  const all = [...frontendPorts, healthPort];
  const dup = all.find((p, k) => all.indexOf(p) !== k);
  if (dup !== undefined) throw new Error(`hakube: loadBalancer: port ${dup} is used twice (API ${port}, ingress ${ingress.map((x) => x.port).join("/") || "-"}, local health ${healthPort})`);
  const hostNames = new Set<string>();
  const lbHosts = i.lbHosts.map((h, k) => {
    if (hostNames.has(h.name)) bad("duplicate load balancer", h.name);
    hostNames.add(h.name);
    return { name: name("host name", h.name), internalAddress: ip(`internalAddress of ${h.name}`, h.internalAddress), priority: vrrpPriority(k) };
  });
  const vip = ip("vip", i.vip);
  if (lbHosts.some((h) => h.internalAddress === vip)) bad("vip (it is a load balancer's address)", vip);
  return {
    clusterName: name("cluster name", i.clusterName),
    engine: i.engine,
    vip,
    vipPrefix: int("vipPrefix", i.vipPrefix, 1, 32),
    interface: IFACE.test(i.interface) ? i.interface : bad("interface", i.interface),
    virtualRouterId: int("virtualRouterId", i.virtualRouterId, 1, 255),
    port,
    ingress,
    lbHosts,
    apiServers: i.apiServers.map((b) => ({ name: name("API server name", b.name), address: ip(`address of ${b.name}`, b.address), port: int(`port of ${b.name}`, b.port, 1, 65535) })),
    workers: i.workers.map((w) => ({ name: name("worker name", w.name), address: ip(`address of ${w.name}`, w.address) })),
    vrrp,
    healthPort,
    paths,
    runAs: i.runAs === undefined ? ENGINE_USERS[i.engine] : i.runAs === null ? null : { user: user("user", i.runAs.user), group: user("group", i.runAs.group) },
    scriptUser: user("script user", i.scriptUser ?? KEEPALIVED_SCRIPT_USER),
    frontendPorts,
  };
}

/* ------------------------------------------------------------------ failover arithmetic (docs + tests) */

/** RFC 5798 Master_Down_Interval = 3 × Advertisement_Interval + Skew_Time, Skew_Time = (256 − Priority) × Advertisement_Interval / 256. */
export function masterDownIntervalMs(priority: number, advertSeconds = VRRP_ADVERT_SECONDS): number {
  const a = advertSeconds * 1000;
  return 3 * a + ((256 - priority) * a) / 256;
}

/**
 * Upper bounds (ms) for HAProxy marking an API server DOWN after it dies, from the check
 * timing: `refused` (process stopped: RST at once), `silent` (powered off: each check waits
 * `timeout check`). The death may come just after a successful check, so the first failing
 * check starts up to `inter` later.
 */
export function apiServerMarkDownBoundMs(): { refused: number; silent: number } {
  const c = APISERVER_CHECK;
  return {
    refused: c.interMs + (c.fall - 1) * c.fastinterMs,
    silent: c.interMs + c.timeoutMs + (c.fall - 1) * (c.fastinterMs + c.timeoutMs),
  };
}

/**
 * Upper bound (ms) for a stopped engine (connection refused at once) to lower the holder's
 * priority: `fall` failed runs, `interval` apart, the first one up to `interval` after the stop.
 * The VIP then moves after one master-down interval of the backup (≤ 660 ms).
 */
export function engineDeathDetectionBoundMs(): number {
  return CHECK.fall * CHECK.interval * 1000;
}
/**
 * The same for a hung engine (accepts, never answers): each run waits `readTimeoutS`; keepalived
 * 2.2.7 starts a run every `interval` even while the last one still runs.
 */
export function engineHangDetectionBoundMs(): number {
  return CHECK.interval * 1000 + CHECK.readTimeoutS * 1000 + (CHECK.fall - 1) * CHECK.interval * 1000;
}
/** Effective priorities (keepalived clamps to 1…254): healthy/sick holder, healthy/sick backup, for base priority `p`. */
export function effectivePriorities(p: number): { holder: number; sickHolder: number; backup: number; sickBackup: number } {
  const clamp = (n: number) => Math.max(1, Math.min(254, n));
  return { holder: clamp(p + HOLDER_BONUS), sickHolder: clamp(p + HOLDER_BONUS + CHECK.weight), backup: clamp(p), sickBackup: clamp(p + CHECK.weight) };
}

/* ------------------------------------------------------------------ haproxy.cfg */

const ms = (n: number) => (n % 1000 === 0 ? `${n / 1000}s` : `${n}ms`);
const header = (what: string, r: Resolved) =>
  `# hakube: ${what} for cluster ${r.clusterName} (LoadBalancerPair). Generated by hakube; local edits are overwritten.`;

export function renderHaproxyConfig(input: LbInput | Resolved): string {
  const r = "frontendPorts" in input ? input : resolve(input);
  const p = r.paths;
  const c = APISERVER_CHECK;
  const ic = INGRESS_CHECK;
  const L: string[] = [
    header("HAProxy", r),
    "# TCP pass-through to the API servers; active HTTPS checks verify each API server's",
    `# certificate against the cluster's Kubernetes CA and its "${APISERVER_CERT_NAME}" SAN.`,
    "global",
    "    log /dev/log local0 info",
    ...(p.chroot ? [`    chroot ${p.chroot}`] : []),
    ...(r.runAs ? [`    user ${r.runAs.user}`, `    group ${r.runAs.group}`] : []),
    `    stats socket ${p.statsSocket} mode 660 level admin expose-fd listeners`,
    "    stats timeout 30s",
    "    # no maxconn: HAProxy sizes it from the file-descriptor limit it gets (a fixed value above the",
    "    # hard limit makes it refuse to start)",
    "    # old processes keep serving established connections after a reload, at most this long",
    `    hard-stop-after ${IDLE_TIMEOUT}`,
    "    ssl-server-verify required",
    "",
    "defaults",
    "    mode tcp",
    "    log global",
    "    option tcplog",
    "    option dontlognull",
    "    # a crashed server drops SYNs silently: give up on it after 1 s and retry on another one",
    "    # (redispatch on every retry), well before a client's own timeout; until the checks mark it",
    "    # down, a new connection to it costs at most that second",
    "    option redispatch 1",
    "    retries 3",
    "    timeout connect 1s",
    "    # long idle timeouts: API watches stay open for minutes without traffic",
    `    timeout client ${IDLE_TIMEOUT}`,
    `    timeout server ${IDLE_TIMEOUT}`,
    "    timeout client-fin 30s",
    "    timeout server-fin 30s",
    `    timeout check ${ms(c.timeoutMs)}`,
    "",
    "# Local health endpoint for keepalived's check script (never touches a backend) and the",
    `# stats page: curl http://127.0.0.1:${r.healthPort}/healthz, http://127.0.0.1:${r.healthPort}/stats`,
    "frontend hakube-health",
    `    bind 127.0.0.1:${r.healthPort}`,
    "    mode http",
    "    option httplog",
    "    option dontlog-normal",
    "    timeout client 5s",
    "    monitor-uri /healthz",
    "    stats enable",
    "    stats uri /stats",
    "    stats refresh 5s",
    "",
    "frontend kube-apiserver",
    `    bind 0.0.0.0:${r.port}`,
    "    default_backend kube-apiserver",
    "",
    "backend kube-apiserver",
    "    balance roundrobin",
    "    option httpchk GET /readyz",
    "    http-check expect status 200",
    `    default-server check check-ssl verify required ca-file ${p.caFile} check-sni ${APISERVER_CERT_NAME} verifyhost ${APISERVER_CERT_NAME} inter ${ms(c.interMs)} fastinter ${ms(c.fastinterMs)} downinter ${ms(c.downinterMs)} fall ${c.fall} rise ${c.rise} on-marked-down shutdown-sessions`,
    ...r.apiServers.map((b) => `    server ${b.name} ${b.address}:${b.port}`),
  ];
  for (const g of r.ingress) {
    L.push(
      "",
      `frontend ingress-${g.kind}`,
      `    bind 0.0.0.0:${g.port}`,
      `    default_backend ingress-${g.kind}`,
      "",
      `backend ingress-${g.kind}`,
      "    balance leastconn",
      `    default-server check inter ${ms(ic.interMs)} fastinter ${ms(ic.fastinterMs)} downinter ${ms(ic.downinterMs)} fall ${ic.fall} rise ${ic.rise} on-marked-down shutdown-sessions`,
      ...r.workers.map((w) => `    server ${w.name} ${w.address}:${g.nodePort}`),
    );
  }
  return L.join("\n") + "\n";
}

/* ------------------------------------------------------------------ nginx.conf */

/** The health endpoint's reply (nginx's stream `return` writes it on connect, then closes). */
const NGINX_HEALTH_REPLY = "HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: 3\\r\\n\\r\\nok\\n";

export function renderNginxConfig(input: LbInput | Resolved): string {
  const r = "frontendPorts" in input ? input : resolve(input);
  const p = r.paths;
  const upstream = (id: string, servers: string[]) => [`    upstream ${id} {`, ...servers.map((s) => `        server ${s} max_fails=2 fail_timeout=10s;`), "    }"];
  const L: string[] = [
    header("nginx", r),
    "# This file is the whole nginx configuration: only the stream (TCP) module is loaded; the",
    "# distribution's http block, sites-enabled/ and modules-enabled/ are not included, so the",
    "# default site on port 80 is gone. Open-source nginx has passive checks only: a server",
    "# that refuses max_fails connections within fail_timeout is skipped for fail_timeout.",
    ...(r.runAs ? [`user ${r.runAs.user} ${r.runAs.group};`] : []),
    "worker_processes auto;",
    `pid ${p.nginxPid};`,
    `error_log ${p.nginxErrorLog} warn;`,
    `load_module ${p.nginxStreamModule};`,
    `# old workers keep serving established connections after a reload, at most this long`,
    `worker_shutdown_timeout ${IDLE_TIMEOUT};`,
    "",
    "events {",
    "    worker_connections 8192;",
    "}",
    "",
    "stream {",
    "    log_format hakube '$remote_addr [$time_local] $server_port $status $bytes_sent $bytes_received $session_time $upstream_addr';",
    `    access_log ${p.nginxAccessLog} hakube;`,
    "    proxy_connect_timeout 1s;",
    "    # long idle timeout: API watches stay open for minutes without traffic",
    `    proxy_timeout ${IDLE_TIMEOUT};`,
    "    proxy_socket_keepalive on;",
    "    proxy_next_upstream on;",
    "    proxy_next_upstream_tries 3;",
    "",
    ...upstream("kube_apiserver", r.apiServers.map((b) => `${b.address}:${b.port}`)),
    "    server {",
    `        listen 0.0.0.0:${r.port};`,
    "        proxy_pass kube_apiserver;",
    "    }",
  ];
  for (const g of r.ingress) {
    L.push(
      "",
      ...upstream(`ingress_${g.kind}`, r.workers.map((w) => `${w.address}:${g.nodePort}`)),
      "    server {",
      `        listen 0.0.0.0:${g.port};`,
      `        proxy_pass ingress_${g.kind};`,
      "    }",
    );
  }
  L.push(
    "",
    "    # local health endpoint for keepalived's check script (never touches a backend)",
    "    server {",
    `        listen 127.0.0.1:${r.healthPort};`,
    "        access_log off;",
    `        return "${NGINX_HEALTH_REPLY}";`,
    "    }",
    "}",
  );
  return L.join("\n") + "\n";
}

/* ------------------------------------------------------------------ keepalived */

export function renderEngineConfig(input: LbInput | Resolved): string {
  const r = "frontendPorts" in input ? input : resolve(input);
  return r.engine === "haproxy" ? renderHaproxyConfig(r) : renderNginxConfig(r);
}

/**
 * Bash function `lb_probe`: succeeds when the local engine answers its health endpoint and
 * every frontend port is listening. It runs in a subshell (a failed /dev/tcp redirection
 * only ends the subshell) and never connects to a backend.
 */
export function renderProbeFunction(r: Resolved): string {
  const ask = r.engine === "haproxy" ? `  printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 || exit 1\n` : "";
  const filter = r.frontendPorts.map((p) => `sport = :${p}`).join(" or ");
  return `lb_probe() (
  # ${r.engine} answers on its local health endpoint (its event loop is alive) ...
  { exec 3<>/dev/tcp/127.0.0.1/${r.healthPort}; } 2>/dev/null || exit 1
${ask}  IFS= read -r -t ${CHECK.readTimeoutS} status <&3 || exit 1
  case "$status" in "HTTP/1."[01]" 200"*) ;; *) exit 1 ;; esac
  # ... and every frontend port has a listener: one ss for all ports (the kernel filters), its
  # output parsed with bash builtins (no fork per port); never connects through to a backend
  want=" ${r.frontendPorts.join(" ")} "
  while read -r _ _ _ addr _; do
    want=\${want/ \${addr##*:} / }
  done < <(ss -Hltn '( ${filter} )' 2>/dev/null)
  [ -z "\${want// /}" ] || exit 1
)`;
}

export function renderCheckScript(input: LbInput | Resolved): string {
  const r = "frontendPorts" in input ? input : resolve(input);
  return `#!/bin/bash
${header("keepalived check script", r)}
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
# keepalived runs it every ${CHECK.interval} s as ${r.scriptUser}. It succeeds while the local ${r.engine} answers on
# 127.0.0.1:${r.healthPort} and listens on port(s) ${r.frontendPorts.join(", ")}. It never looks at the API servers:
# with all of them down the VIP stays where it is (no flapping); with ${r.engine} dead it moves.
# A failure lowers this host's VRRP priority by ${-CHECK.weight} (never FAULT): see keepalived.conf.
${renderProbeFunction(r)}
lb_probe
`;
}

/**
 * keepalived's notify script (runs as root on every state change: \`INSTANCE name STATE prio\`):
 * 1 in the holder file while MASTER, 0 otherwise. keepalived tracks the file (inotify, no
 * polling) and adds HOLDER_BONUS × its value to the priority. One bash, no fork.
 */
export function renderNotifyScript(input: LbInput | Resolved): string {
  const r = "frontendPorts" in input ? input : resolve(input);
  return `#!/bin/bash
${header("keepalived notify script", r)}
# keepalived runs it as root on every VRRP state change with: TYPE NAME STATE PRIORITY.
# While this host is MASTER its priority gets +${HOLDER_BONUS} (track_file hakube_holder): no healthy
# backup outranks the holder, so a recovered host does not take the VIP back.
case "\${3:-}" in
  MASTER) v=1 ;;
  *) v=0 ;;
esac
printf '%s\\n' "$v" > ${r.paths.holderFile}
`;
}

export function renderKeepalivedConfig(input: LbInput | Resolved, hostName: string): string {
  const r = "frontendPorts" in input ? input : resolve(input);
  const self = r.lbHosts.find((h) => h.name === hostName);
  if (!self) throw new Error(`hakube: loadBalancer: ${hostName} is not a load balancer`);
  const peers = r.lbHosts.filter((h) => h.name !== hostName);
  const e = effectivePriorities(self.priority);
  const L: string[] = [
    header(`keepalived on ${self.name}`, r),
    "# VRRPv3 has no authentication (RFC 5798 removed it): there is no shared secret. Keep VRRP",
    "# (IP protocol 112) on a trusted segment; the virtual_router_id must be unique on it.",
    "global_defs {",
    `    router_id ${self.name}`,
    "    vrrp_version 3",
    `    script_user ${r.scriptUser}`,
    "    enable_script_security",
    "    # the VRRP process runs ahead of CPU hogs (nice -10): adverts go out on time on a busy host",
    "    vrrp_priority -10",
    "}",
    "",
    "# The health check never puts the instance in FAULT: a failing check lowers the priority by",
    `# ${-CHECK.weight}, below every healthy backup, which then takes the VIP (preemption). If every load`,
    "# balancer's check fails at once (a busy machine: checks time out), the holder still has the",
    "# highest priority and keeps the VIP: load can reorder priorities, never leave the VIP unheld.",
    "vrrp_script hakube_lb_check {",
    `    script "${r.paths.checkScript}"`,
    `    interval ${CHECK.interval}`,
    `    timeout ${CHECK.timeout}`,
    `    fall ${CHECK.fall}`,
    `    rise ${CHECK.rise}`,
    `    weight ${CHECK.weight}`,
    "}",
    "",
    `# 1 while this host is MASTER (written by the notify script), else 0: the holder gets +${HOLDER_BONUS}`,
    "track_file hakube_holder {",
    `    file "${r.paths.holderFile}"`,
    `    weight ${HOLDER_BONUS}`,
    "    init_file 0 overwrite",
    "}",
    "",
    `vrrp_instance hakube_${r.clusterName.replace(/-/g, "_")} {`,
    "    # every instance starts BACKUP. Preemption is on, but a healthy holder outranks every healthy",
    `    # backup (priority ${self.priority} + ${HOLDER_BONUS} while MASTER): a recovered host does not take the VIP back`,
    `    # (each move drops the connections through the load balancer). Effective priorities here:`,
    `    # holder ${e.holder}, holder with a failing check ${e.sickHolder}, backup ${e.backup}, backup with a failing check ${e.sickBackup}`,
    "    state BACKUP",
    `    interface ${r.interface}`,
    `    virtual_router_id ${r.virtualRouterId}`,
    `    priority ${self.priority}`,
    `    advert_int ${VRRP_ADVERT_SECONDS}`,
  ];
  if (r.vrrp === "unicast") {
    L.push(`    unicast_src_ip ${self.internalAddress}`);
    if (peers.length) L.push("    unicast_peer {", ...peers.map((h) => `        ${h.internalAddress}`), "    }");
  }
  L.push(
    "    virtual_ipaddress {",
    `        ${r.vip}/${r.vipPrefix} dev ${r.interface}`,
    "    }",
    "    track_script {",
    "        hakube_lb_check",
    "    }",
    "    track_file {",
    "        hakube_holder",
    "    }",
    `    notify "${r.paths.notifyScript}" root`,
    "}",
  );
  return L.join("\n") + "\n";
}

/* ------------------------------------------------------------------ step bodies */

/** Bash that writes `content` to `file` (no atomicity needed: a private temp candidate). */
function writeTo(file: string, content: string): string {
  const text = content.endsWith("\n") ? content : content + "\n";
  const eof = heredocDelimiter(text, "HAKUBE_FILE");
  return `cat > ${file} <<'${eof}'\n${text}${eof}`;
}

/**
 * Validators, as bash functions used by the steps and by the tests. Each fails with the
 * validator's own words; the live file is untouched because validation runs on a candidate.
 */
export const VALIDATE_FUNCTIONS = `lb_oneline() { printf '%s' "$1" | tr '\\n' ' ' | cut -c1-1500; }
# lb_validate haproxy|nginx|keepalived FILE
lb_validate() {
  local kind=$1 file=$2 out rc=0
  case "$kind" in
    haproxy) out=$(haproxy -c -f "$file" 2>&1) || rc=$? ;;
    nginx) out=$(nginx -t -q -c "$file" 2>&1) || rc=$? ;;
    keepalived)
      # keepalived 2.2 -t reports most problems on stderr but still exits 0, or 143 (it sends
      # itself SIGTERM when done): any output is a failure.
      out=$(keepalived -t -f "$file" 2>&1) || rc=$?
      if [ "$rc" = 143 ]; then rc=0; fi
      if [ "$rc" = 0 ] && [ -n "$out" ]; then rc=1; fi ;;
    *) hakube_fail "lb_validate: unknown kind $kind" ;;
  esac
  [ "$rc" = 0 ] || hakube_fail "$kind rejected the new configuration (exit $rc; the live configuration is unchanged): $(lb_oneline "$out")"
}`;

/**
 * Bash function \`lb_apply SERVICE STAMP HASH\`: bring the service to the configuration whose
 * hash is HASH. First configuration by hakube (no stamp): restart (takes over from the
 * distribution's default config). Not running: start. Running with another stamp: reload
 * (established connections survive). Running with this stamp: nothing.
 */
export const APPLY_FUNCTION = `lb_journal() { journalctl -u "$1" -n 12 --no-pager 2>/dev/null | tail -n 12 | tr '\\n' ' ' || true; }
lb_apply() {
  local svc=$1 stamp=$2 want=$3 have=""
  [ -f "$stamp" ] && have=$(cat "$stamp")
  if ! systemctl is-enabled --quiet "$svc" 2>/dev/null; then
    systemctl enable --quiet "$svc" || hakube_fail "systemctl enable $svc failed"
    echo "enabled $svc"
  fi
  if [ -z "$have" ]; then
    systemctl restart "$svc" || hakube_fail "systemctl restart $svc failed: $(lb_journal "$svc")"
    echo "restarted $svc (first configuration by hakube)"
  elif ! systemctl is-active --quiet "$svc"; then
    systemctl start "$svc" || hakube_fail "systemctl start $svc failed: $(lb_journal "$svc")"
    echo "started $svc"
  elif [ "$have" != "$want" ]; then
    systemctl reload "$svc" || hakube_fail "systemctl reload $svc failed: $(lb_journal "$svc")"
    echo "reloaded $svc"
  fi
}
# lb_stamp STAMP HASH: record what is applied (after it proved healthy)
lb_stamp() { [ "$(cat "$1" 2>/dev/null || true)" = "$2" ] || { printf '%s\\n' "$2" > "$1.tmp" && mv -f "$1.tmp" "$1"; }; }`;

/** Install the engine and keepalived from the distribution, and keepalived's script user. */
export function renderPackagesStep(input: LbInput | Resolved): string {
  const r = "frontendPorts" in input ? input : resolve(input);
  const pkgs = r.engine === "haproxy" ? ["haproxy", "keepalived"] : ["nginx", "libnginx-mod-stream", "keepalived"];
  return `# ${r.engine} and keepalived from the distribution's packages. Their postinst would start the
# services with the distribution's configs (nginx's default site on port 80 even fails the install
# when that port is taken): a temporary policy-rc.d keeps them stopped; the proxy and keepalived
# steps start them with hakube's configs.
lb_need=0
for p in ${shqAll(pkgs)}; do
  [ "$(dpkg-query -W -f='\${db:Status-Status}' "$p" 2>/dev/null || true)" = installed ] || lb_need=1
done
lb_policy=0
if [ "$lb_need" = 1 ] && [ ! -e /usr/sbin/policy-rc.d ]; then
  lb_policy=1
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  printf '#!/bin/sh\\n# hakube: installing the load balancer packages without starting them\\nexit 101\\n' > /usr/sbin/policy-rc.d
  chmod 0755 /usr/sbin/policy-rc.d
fi
hakube_apt_install ${shqAll(pkgs)}
if [ "$lb_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
for c in ${r.engine} keepalived ss; do
  command -v "$c" >/dev/null 2>&1 || hakube_fail "$c is missing after installing ${pkgs.join(" ")}"
done
${r.engine === "nginx" ? `[ -f ${shq(r.paths.nginxStreamModule)} ] || hakube_fail "the nginx stream module ${r.paths.nginxStreamModule} is missing (package libnginx-mod-stream)"\n` : ""}# keepalived runs the check script as this unprivileged user (enable_script_security)
if ! getent passwd ${shq(r.scriptUser)} >/dev/null; then
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ${shq(r.scriptUser)}
  echo "created user ${r.scriptUser}"
fi
`;
}

/** Configure the engine: CA file, validated config swapped in atomically, reload only on change, health probe. */
export function renderProxyStep(input: LbInput | Resolved, caCertPem: string): string {
  const r = "frontendPorts" in input ? input : resolve(input);
  const p = r.paths;
  const other: Engine = r.engine === "haproxy" ? "nginx" : "haproxy";
  const otherConfig = other === "haproxy" ? p.haproxyConfig : p.nginxConfig;
  const live = r.engine === "haproxy" ? p.haproxyConfig : p.nginxConfig;
  const stamp = `${p.stateDir}/${r.engine}.applied`;
  const hashed = r.engine === "haproxy" ? [live, p.caFile] : [live];
  const L: string[] = [VALIDATE_FUNCTIONS, APPLY_FUNCTION, renderProbeFunction(r), ""];
  L.push(
    `# engine switch: stop the other engine when it runs hakube's configuration`,
    `if [ -f ${shq(otherConfig)} ] && grep -q '^# hakube: ' ${shq(otherConfig)} && systemctl is-active --quiet ${other} 2>/dev/null; then`,
    `  systemctl disable --now --quiet ${other} || hakube_fail "could not stop ${other} (the engine is now ${r.engine})"`,
    `  rm -f ${shq(`${p.stateDir}/${other}.applied`)}`,
    `  echo "stopped ${other}: the engine is now ${r.engine}"`,
    `fi`,
    `hakube_dir ${shq(p.stateDir)} 0755 root root`,
  );
  if (r.engine === "haproxy") {
    if (!/^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n?$/.test(caCertPem) || /PRIVATE KEY/.test(caCertPem))
      throw new Error("hakube: loadBalancer: the Kubernetes CA certificate is not a PEM certificate");
    L.push(
      "# the Kubernetes CA (public): HAProxy verifies the API servers' certificates with it",
      putLines(p.caFile, "0644", caCertPem),
    );
  } else {
    L.push(
      "# nginx restarts itself after a crash (the distribution's unit does not)",
      dropIn("nginx", "2s"),
    );
  }
  const dir = live.replace(/\/[^/]+$/, "");
  L.push(
    `# the configuration: rendered to a candidate, validated by ${r.engine} itself, then swapped in atomically`,
    `candidate=$(mktemp ${shq(`${dir}/.hakube-candidate.XXXXXX`)})`,
    `trap 'rm -f "$candidate"' EXIT`,
    writeTo('"$candidate"', renderEngineConfig(r)),
    `lb_validate ${r.engine} "$candidate"`,
    `hakube_put ${shqAll([live, "0644", "root", "root"])} < "$candidate"`,
    "",
    `want=$(cat ${shqAll(hashed)} | sha256sum | cut -d' ' -f1)`,
    `lb_apply ${r.engine} ${shq(stamp)} "$want"`,
    `hakube_retry 30 "${r.engine} health endpoint 127.0.0.1:${r.healthPort} and listeners on ${r.frontendPorts.join(", ")}" lb_probe`,
    `lb_stamp ${shq(stamp)} "$want"`,
  );
  return L.join("\n") + "\n";
}

export function renderProxyDeleteStep(input: LbInput | Resolved): string {
  const r = "frontendPorts" in input ? input : resolve(input);
  const p = r.paths;
  const live = r.engine === "haproxy" ? p.haproxyConfig : p.nginxConfig;
  return `# this host no longer balances the cluster: stop ${r.engine} when it runs hakube's configuration
if [ -f ${shq(live)} ] && grep -q '^# hakube: ' ${shq(live)}; then
  systemctl disable --now --quiet ${r.engine} 2>/dev/null || true
  echo "stopped ${r.engine}"
fi
hakube_remove ${shqAll([`${p.stateDir}/${r.engine}.applied`, ...(r.engine === "haproxy" ? [p.caFile] : ["/etc/systemd/system/nginx.service.d/hakube.conf"])])}
`;
}

/** keepalived: interface checks, check script, validated config, reload only on change, VIP reachable. */
export function renderKeepalivedStep(input: LbInput | Resolved, hostName: string): string {
  const r = "frontendPorts" in input ? input : resolve(input);
  const self = r.lbHosts.find((h) => h.name === hostName);
  if (!self) throw new Error(`hakube: loadBalancer: ${hostName} is not a load balancer`);
  const p = r.paths;
  const stamp = `${p.stateDir}/keepalived.applied`;
  const dir = p.keepalivedConfig.replace(/\/[^/]+$/, "");
  return `${VALIDATE_FUNCTIONS}
${APPLY_FUNCTION}

# the VRRP interface must exist and carry this host's internalAddress (the unicast source)
ip -o link show dev ${shq(r.interface)} >/dev/null 2>&1 \\
  || hakube_fail "interface ${r.interface} (hakube:loadBalancer.interface) does not exist here; interfaces: $(ip -o link show | awk -F': ' '{print $2}' | tr '\\n' ' ')"
# (read into a variable first: \`ip … | grep -q\` fails under pipefail when grep stops reading early)
addrs=$(ip -o -4 addr show dev ${shq(r.interface)} | awk '{print $4}')
case " $(echo $addrs) " in
  *${shq(` ${self.internalAddress}/`)}*) ;;
  *) hakube_fail "internalAddress ${self.internalAddress} is not on interface ${r.interface}; its addresses: $(echo $addrs)" ;;
esac

hakube_dir ${shq(p.stateDir)} 0755 root root
# the check script: root-owned and not writable by others (enable_script_security), run as ${r.scriptUser};
# the notify script (root) keeps the holder file that gives the MASTER its priority bonus
${putLines(p.checkScript, "0755", renderCheckScript(r))}
${putLines(p.notifyScript, "0755", renderNotifyScript(r))}
# keepalived restarts itself after a crash (the distribution's unit does not), and at boot waits
# (at most 30 s) for this host's address: started before the interface has it (network-online.target
# does not always wait for it), keepalived cannot bind the VRRP source and stays in FAULT for good
${dropIn("keepalived", "1s", [`ExecStartPre=-/usr/bin/timeout 30 /bin/sh -c 'until ip -4 -o addr show dev ${r.interface} | grep -q " ${self.internalAddress}/"; do sleep 0.2; done'`])}

candidate=$(mktemp ${shq(`${dir}/.hakube-candidate.XXXXXX`)})
trap 'rm -f "$candidate"' EXIT
${writeTo('"$candidate"', renderKeepalivedConfig(r, hostName))}
lb_validate keepalived "$candidate"
hakube_put ${shqAll([p.keepalivedConfig, "0644", "root", "root"])} < "$candidate"

# the holder bonus survives a reload that brings it in (an upgrade from a config without it):
# keepalived runs the notify script only on state changes, so record now what it would have written
vip_here=0
case " $(ip -o -4 addr show dev ${shq(r.interface)} | awk '{print $4}' | tr '\\n' ' ') " in *${shq(` ${r.vip}/`)}*) vip_here=1 ;; esac
[ "$(cat ${shq(p.holderFile)} 2>/dev/null || true)" = "$vip_here" ] || printf '%s\\n' "$vip_here" > ${shq(p.holderFile)}

want=$(sha256sum < ${shq(p.keepalivedConfig)} | cut -d' ' -f1)
lb_apply keepalived ${shq(stamp)} "$want"
# ready: the VIP answers on the API port (from whichever load balancer holds it)
lb_vip() { timeout 2 bash -c ${shq(`exec 3<>/dev/tcp/${r.vip}/${r.port}`)} 2>/dev/null; }
hakube_retry 30 "the VIP ${r.vip}:${r.port} to accept connections" lb_vip
lb_stamp ${shq(stamp)} "$want"
`;
}

/** A systemd drop-in that restarts SERVICE after a crash (+ extra [Service] lines); daemon-reload only when it changed. */
function dropIn(service: string, restartSec: string, extra: string[] = []): string {
  return `n=\${#HAKUBE_CHANGED[@]}
${putLines(`/etc/systemd/system/${service}.service.d/hakube.conf`, "0644", ["[Service]", "Restart=on-failure", `RestartSec=${restartSec}`, ...extra, ""].join("\n"))}
[ "\${#HAKUBE_CHANGED[@]}" -eq "$n" ] || systemctl daemon-reload`;
}

function putLines(file: string, mode: string, content: string): string {
  const eof = heredocDelimiter(content, "HAKUBE_FILE");
  return `hakube_put ${shqAll([file, mode, "root", "root"])} <<'${eof}'\n${content.endsWith("\n") ? content : content + "\n"}${eof}`;
}

export function renderKeepalivedDeleteStep(input: LbInput | Resolved): string {
  const r = "frontendPorts" in input ? input : resolve(input);
  const p = r.paths;
  return `# this host no longer holds the VIP: stop keepalived (it releases the VIP) and remove hakube's files
if [ -f ${shq(p.keepalivedConfig)} ] && grep -q '^# hakube: ' ${shq(p.keepalivedConfig)}; then
  systemctl disable --now --quiet keepalived 2>/dev/null || true
  echo "stopped keepalived"
  hakube_remove ${shq(p.keepalivedConfig)}
fi
# a VIP left behind (keepalived killed hard) goes too
addrs=$(ip -o -4 addr show dev ${shq(r.interface)} 2>/dev/null | awk '{print $4}' || true)
case " $(echo $addrs) " in
  *${shq(` ${r.vip}/`)}*) ip addr del ${shq(`${r.vip}/${r.vipPrefix}`)} dev ${shq(r.interface)} && echo "removed stale VIP ${r.vip}" ;;
esac
hakube_remove ${shqAll([p.checkScript, p.notifyScript, p.holderFile, `${p.stateDir}/keepalived.applied`, "/etc/systemd/system/keepalived.service.d/hakube.conf"])}
`;
}
