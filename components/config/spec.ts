/**
 * Stack configuration → typed, validated `ClusterSpec`. Pure: no Pulumi import, no resources.
 *
 * Every problem is collected and reported together, each prefixed by its key path
 * (`hakube:hosts[2].internalAddress: …`). Legal but non-HA shapes come back as warnings.
 */
import * as ipaddr from "ipaddr.js";
import * as semver from "semver";
import { z } from "zod";
import { KUBE_PROXY_CONFIGURATION_FIELDS, KUBELET_CONFIGURATION_FIELDS } from "./componentconfig";
import { APISERVER_PORT, CGROUP_V1_FAIL_BY_DEFAULT_MINOR, CGROUP_V1_NEWEST_CHECKED_MINOR, CNI_VERSIONS, containerdRanges, describeRanges, DEFAULTS, LB_HEALTH_PORT, MIN_EXTERNAL_ETCD_VERSION, MIN_KUBERNETES_VERSION, ROLE_PORTS } from "./defaults";

export const NAMESPACE = "hakube";
const CNI_CILIUM = CNI_VERSIONS.cilium;
export const ROLES = ["loadbalancer", "etcd", "controlplane", "worker"] as const;
export type Role = (typeof ROLES)[number];
export const ARCHES = ["amd64", "arm64", "ppc64le", "s390x"] as const;
export type Arch = (typeof ARCHES)[number];
export const TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"] as const;

export interface Taint {
  key: string;
  value?: string;
  effect: (typeof TAINT_EFFECTS)[number];
}

export interface HostSpec {
  name: string;
  /** Where SSH connects (IP or DNS name). */
  address: string;
  /** IPv4 for cluster traffic. */
  internalAddress: string;
  roles: Role[];
  /** SSH user and port, after the cluster-wide defaults were applied. */
  user: string;
  port: number;
  /** OpenSSH public host key (`type base64`, comment dropped). */
  hostKey?: string;
  labels: Record<string, string>;
  taints: Taint[];
}

export interface IngressPortSpec {
  port: number;
  nodePort: number;
}

export interface LoadBalancerSpec {
  engine: "haproxy" | "nginx";
  vip: string;
  vipPrefix: number;
  interface: string;
  virtualRouterId: number;
  port: number;
  ingress?: { http?: IngressPortSpec; https?: IngressPortSpec };
}

export interface EtcdSpec {
  /** Undefined only with `source: apt` and no `etcd.version` set: the distribution's etcd, which the
   *  install step checks on each host against MIN_EXTERNAL_ETCD_VERSION before installing it. */
  version?: string;
  source: "download" | "apt" | "preinstalled";
  downloadUrl: string;
  sha256?: Partial<Record<Arch, string>>;
  dataDir: string;
  /** Raft heartbeat interval (etcd `heartbeat-interval`), ms. */
  heartbeatIntervalMs: number;
  /** Raft election timeout (etcd `election-timeout`), ms: ≥ 5 × heartbeat, a multiple of it. */
  electionTimeoutMs: number;
  /**
   * How a member runs: `systemd` (hakube's own unit running the installed binary) or `kubeadm`
   * (kubeadm's recipe for an external HA etcd: a standalone kubelet on each etcd host runs the
   * static pod `kubeadm init phase etcd local` writes). docs/etcd.md "Deployment".
   */
  deployment: "systemd" | "kubeadm";
  /** The etcd image's tag with `deployment: kubeadm` (`<kubernetes.imageRepository>/etcd:<tag>`); default `<version>-0`. */
  imageTag?: string;
}

export type EncryptionAlgorithm = "ECDSA-P256" | "RSA-2048";

/** Where a node's containerd comes from (see docs/kubernetes.md "Container runtime"). */
export interface ContainerdSpec {
  /** `upstream`: the release tarball + runc from GitHub (checksums verified); `distribution`: the OS package
   *  (must be new enough: Ubuntu's -updates 2.2.x is, Debian's 1.6/1.7 is not); `preinstalled`: only verified. */
  source: "upstream" | "distribution" | "preinstalled";
  /** containerd release for `upstream` (e.g. 2.3.4). */
  version: string;
  /** runc release for `upstream` (e.g. 1.5.3). */
  runcVersion: string;
  /** containerd release tarball for `upstream`: template with `{version}` and `{arch}` (default: the GitHub release). */
  downloadUrl: string;
  /** Pinned sha256 of the containerd tarball per architecture; without it, the published `<url>.sha256sum` is checked. */
  sha256?: Partial<Record<Arch, string>>;
  /** runc binary for `upstream`: template with `{version}` and `{arch}` (default: the GitHub release). */
  runcDownloadUrl: string;
  /** Pinned sha256 of the runc binary per architecture; without it, the published `runc.sha256sum` next to it is checked. */
  runcSha256?: Partial<Record<Arch, string>>;
  /** Registry host configuration (`/etc/containerd/certs.d/<namespace>/hosts.toml`), by registry host namespace. */
  registries: Record<string, RegistrySpec>;
  /** containerd's `restrict_oom_score_adj` (default false): for nodes that are themselves containers
   *  (LXD, systemd-nspawn) without CAP_SYS_RESOURCE, where lowering an oom_score_adj fails every sandbox. */
  restrictOomScoreAdj: boolean;
}

/** One registry endpoint in a containerd `hosts.toml`. */
export interface RegistryEndpoint {
  /** `https://host[:port][/path]`, or `http://…` with `plainHttp: true`. */
  url: string;
  /** The `http://` URL is meant (plain HTTP, no TLS). */
  plainHttp: boolean;
  /** PEM CA certificate(s) the endpoint's TLS certificate is verified against (instead of the system roots). */
  ca?: string;
}

/** A mirror of a registry namespace: tried in order before `server`. */
export interface RegistryMirrorSpec extends RegistryEndpoint {
  capabilities: ("pull" | "resolve" | "push")[];
}

/** containerd's registry host namespace configuration (containerd docs/hosts.md). */
export interface RegistrySpec {
  /** The namespace's own server (`server =`): used after every mirror failed. Default: the namespace host itself. */
  server?: RegistryEndpoint;
  mirrors: RegistryMirrorSpec[];
}

export interface KubernetesSpec {
  version: string;
  podSubnet: string;
  serviceSubnet: string;
  dnsDomain: string;
  packages: "pkgs.k8s.io" | "preinstalled";
  aptRepository?: string;
  /** Key algorithm of every key the program and kubeadm make (kubeadm's `encryptionAlgorithm`). */
  encryptionAlgorithm: EncryptionAlgorithm;
  /** Lifetime of the bootstrap token each time it is created or refreshed: Go duration (`24h`, `90m`), `0` = never expires. */
  bootstrapTokenTtl: string;
  containerd: ContainerdSpec;
  /** kubeadm's `imageRepository` (control-plane images, CoreDNS, pause); unset = kubeadm's default registry.k8s.io. */
  imageRepository?: string;
  /** Run the kubelet on cgroup v1 hosts (KubeletConfiguration `failCgroupV1: false`, kubeadm preflight `SystemVerification` ignored). */
  allowCgroupV1: boolean;
  /** Deep-merged over hakube's KubeletConfiguration (keys hakube owns are refused by the config). */
  kubeletConfiguration?: Record<string, unknown>;
  /** Deep-merged over hakube's KubeProxyConfiguration; the document is emitted only when set. */
  kubeProxyConfiguration?: Record<string, unknown>;
}

/** One kustomize `images:` entry: every container image `name` (without tag) in the CNI manifest is renamed and/or retagged. */
export interface CniImage {
  name: string;
  newName?: string;
  newTag?: string;
  digest?: string;
}

/** One kustomize strategic-merge patch of the CNI manifest, applied after hakube's own (pod subnet) patch. */
export interface CniPatch {
  target: { group?: string; version?: string; kind: string; name: string; namespace?: string };
  patch: Record<string, unknown>;
}

export interface CniSpec {
  plugin: "calico" | "flannel" | "cilium" | "none";
  manifestUrl?: string;
  /** Image renames for a mirrored registry (kustomize `images:`), in the order given. */
  images?: CniImage[];
  /** Further strategic-merge patches of the manifest (kustomize `patches:`), after hakube's. */
  patches?: CniPatch[];
}

export interface ClusterSpec {
  clusterName: string;
  strictHostKeys: boolean;
  hosts: HostSpec[];
  loadBalancer: LoadBalancerSpec;
  etcd: EtcdSpec;
  kubernetes: KubernetesSpec;
  cni: CniSpec;
}

/** What the program hands in: the raw `hakube:*` config as the CLI passes it (strings). */
export interface RawConfig {
  stackName: string;
  /** key without namespace → raw value (objects/lists as JSON text, scalars as text). */
  values: Record<string, string | undefined>;
  /** keys (without namespace) that are stored as secrets. */
  secretKeys: ReadonlySet<string>;
}

export interface SpecResult {
  spec: ClusterSpec;
  warnings: string[];
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(
      `invalid stack configuration (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` +
        problems.map((p) => `  - ${p}`).join("\n"),
    );
    this.name = "ConfigError";
  }
}

/* ------------------------------------------------------------------ field schemas */

const show = (v: unknown) => (typeof v === "string" ? JSON.stringify(v) : JSON.stringify(v) ?? String(v));

export function isIPv4(s: string): boolean {
  return ipaddr.IPv4.isValidFourPartDecimal(s);
}
export function isIP(s: string): boolean {
  return isIPv4(s) || ipaddr.IPv6.isValid(s);
}
/** RFC 1123 host name (dotted labels), as SSH targets are written. */
export function isDnsName(s: string): boolean {
  if (s.length > 253 || isIPv4LikeButInvalid(s)) return false;
  return s.split(".").every((l) => /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/.test(l));
}
/** "10.0.0.300" must not pass as a DNS name just because its labels are digits. */
function isIPv4LikeButInvalid(s: string): boolean {
  return /^[0-9.]+$/.test(s) && !isIPv4(s);
}

/** An IPv4 CIDR whose address is the network address (no host bits). */
function cidrProblem(s: string): string | undefined {
  if (!ipaddr.isValidCIDR(s)) return `${show(s)} is not a CIDR (e.g. 10.244.0.0/16)`;
  const [addr, prefix] = ipaddr.parseCIDR(s);
  if (addr.kind() !== "ipv4") return `${show(s)} is not an IPv4 CIDR`;
  const network = ipaddr.IPv4.networkAddressFromCIDR(s).toString();
  if (network !== addr.toString()) return `${show(s)} has host bits set; did you mean ${network}/${prefix}?`;
  return undefined;
}

const intLike = (min: number, max: number) =>
  z.preprocess(
    (v) => (typeof v === "string" && /^\s*-?\d+\s*$/.test(v) ? Number(v) : v),
    z
      .number({ error: (i) => `expected an integer, got ${show(i.input)}` })
      .int({ error: (i) => `expected an integer, got ${show(i.input)}` })
      .min(min, { error: (i) => `${show(i.input)} is out of range ${min}–${max}` })
      .max(max, { error: (i) => `${show(i.input)} is out of range ${min}–${max}` }),
  );
const boolLike = z.preprocess(
  (v) => (v === "true" ? true : v === "false" ? false : v),
  z.boolean({ error: (i) => `expected true or false, got ${show(i.input)}` }),
);
const str = (what = "a string") => z.string({ error: (i) => `expected ${what}, got ${show(i.input)}` });
const port = intLike(1, 65535);
const ipv4 = str("an IPv4 address").refine(isIPv4, { error: (i) => `${show(i.input)} is not an IPv4 address` });
const cidr = str("a CIDR").superRefine((v, ctx) => {
  const p = cidrProblem(v);
  if (p) ctx.addIssue({ code: "custom", message: p, input: v });
});
const enumOf = <T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { error: (i) => `${show(i.input)} is not one of ${values.join(", ")}` });
const versionString = str("a version").transform((v, ctx) => {
  const cleaned = v.trim().replace(/^v/, "");
  if (!semver.valid(cleaned) || cleaned !== semver.valid(cleaned)) {
    ctx.addIssue({ code: "custom", message: `${show(v)} is not a semantic version like 1.2.3`, input: v });
    return z.NEVER;
  }
  return cleaned;
});
const url = (mustContain: string[] = []) =>
  str("a URL").superRefine((v, ctx) => {
    let ok = false;
    try {
      const u = new URL(v.replace(/\{(version|arch)\}/g, "x"));
      ok = u.protocol === "https:" || u.protocol === "http:";
    } catch {
      ok = false;
    }
    if (!ok) ctx.addIssue({ code: "custom", message: `${show(v)} is not an http(s) URL`, input: v });
    for (const m of mustContain)
      if (!v.includes(m)) ctx.addIssue({ code: "custom", message: `${show(v)} must contain ${m}`, input: v });
  });
const absPath = str("an absolute path").refine((p) => /^\/[^\0]*$/.test(p) && !p.split("/").includes(".."), {
  error: (i) => `${show(i.input)} is not an absolute path`,
});

/* labels: [prefix/]name — prefix a DNS subdomain ≤ 253, name ≤ 63; value ≤ 63, may be empty */
const LABEL_NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$/;
export function labelKeyProblem(k: string): string | undefined {
  const slash = k.lastIndexOf("/");
  const prefix = slash >= 0 ? k.slice(0, slash) : undefined;
  const name = slash >= 0 ? k.slice(slash + 1) : k;
  if (prefix !== undefined && (prefix.length > 253 || !prefix.split(".").every((l) => /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(l))))
    return `label key ${show(k)}: prefix ${show(prefix)} is not a DNS subdomain`;
  if (!LABEL_NAME.test(name)) return `label key ${show(k)}: name must be ≤ 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric`;
  return undefined;
}
function labelValueProblem(v: string): string | undefined {
  if (v === "" || LABEL_NAME.test(v)) return undefined;
  return `label value ${show(v)} must be empty or ≤ 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric`;
}
const labels = z.record(z.string(), z.unknown()).superRefine((m, ctx) => {
  for (const [k, v] of Object.entries(m)) {
    const kp = labelKeyProblem(k);
    if (kp) ctx.addIssue({ code: "custom", message: kp, path: [k] });
    if (typeof v !== "string") ctx.addIssue({ code: "custom", message: `label value must be a string, got ${show(v)}`, path: [k] });
    else {
      const vp = labelValueProblem(v);
      if (vp) ctx.addIssue({ code: "custom", message: vp, path: [k] });
    }
  }
});

/** `key[=value]:Effect` → Taint. */
export function parseTaint(s: string): Taint | string {
  const m = /^([^=:\s]+)(?:=([^:\s]*))?:([A-Za-z]+)$/.exec(s);
  if (!m) return `${show(s)} is not a taint; expected key[=value]:NoSchedule|PreferNoSchedule|NoExecute`;
  const [, key, value, effect] = m;
  const kp = labelKeyProblem(key);
  if (kp) return `taint ${show(s)}: ${kp}`;
  if (value !== undefined) {
    const vp = labelValueProblem(value);
    if (vp) return `taint ${show(s)}: ${vp}`;
  }
  if (!(TAINT_EFFECTS as readonly string[]).includes(effect))
    return `taint ${show(s)}: effect ${show(effect)} is not one of ${TAINT_EFFECTS.join(", ")}`;
  return value === undefined ? { key, effect: effect as Taint["effect"] } : { key, value, effect: effect as Taint["effect"] };
}
const taint = str("a taint").transform((s, ctx) => {
  const t = parseTaint(s);
  if (typeof t === "string") {
    ctx.addIssue({ code: "custom", message: t, input: s });
    return z.NEVER;
  }
  return t;
});

/** OpenSSH public key line: `type base64 [comment]`; the blob must carry the same type. */
export function normalizeHostKey(s: string): string | undefined {
  const parts = s.trim().split(/\s+/);
  if (parts.length < 2) return undefined;
  const [type, b64] = parts;
  if (!/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)$/.test(type)) return undefined;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return undefined;
  const blob = Buffer.from(b64, "base64");
  if (blob.length < 4) return undefined;
  const len = blob.readUInt32BE(0);
  if (blob.length < 4 + len || blob.subarray(4, 4 + len).toString("latin1") !== type) return undefined;
  return `${type} ${b64}`;
}
const hostKey = str("an OpenSSH public host key").transform((s, ctx) => {
  const k = normalizeHostKey(s);
  if (!k) {
    ctx.addIssue({ code: "custom", message: `${show(s.length > 40 ? s.slice(0, 40) + "…" : s)} is not an OpenSSH public key line like "ssh-ed25519 AAAA…"`, input: s });
    return z.NEVER;
  }
  return k;
});

const HostSchema = z.strictObject({
  name: str("a host name").refine((n) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(n), {
    error: (i) => `${show(i.input)} is not an RFC 1123 label (lower-case a-z, 0-9, '-', ≤ 63 characters)`,
  }),
  address: str("an address").refine((a) => isIP(a) || isDnsName(a), {
    error: (i) => `${show(i.input)} is neither an IP address nor a DNS name`,
  }),
  internalAddress: ipv4.optional(),
  roles: z
    .array(enumOf(ROLES), { error: (i) => `expected a list of roles, got ${show(i.input)}` })
    .min(1, { error: `needs at least one of ${ROLES.join(", ")}` })
    .superRefine((rs, ctx) => {
      const dup = rs.filter((r, i) => rs.indexOf(r) !== i);
      if (dup.length) ctx.addIssue({ code: "custom", message: `duplicate role ${show(dup[0])}` });
    }),
  user: str("a user name").regex(/^[a-z_][a-z0-9_.-]{0,31}$/, { error: (i) => `${show(i.input)} is not a user name` }).optional(),
  port: port.optional(),
  hostKey: hostKey.optional(),
  labels: labels.optional(),
  taints: z.array(taint, { error: (i) => `expected a list of taints, got ${show(i.input)}` }).optional(),
});

const IngressPortSchema = z.strictObject({ port, nodePort: intLike(30000, 32767) });

const LoadBalancerSchema = z.strictObject({
  engine: enumOf(["haproxy", "nginx"]).default(DEFAULTS.loadBalancer.engine),
  vip: ipv4,
  vipPrefix: intLike(1, 32).default(DEFAULTS.loadBalancer.vipPrefix),
  interface: str("an interface name")
    .regex(/^[A-Za-z0-9_.:@-]{1,15}$/, { error: (i) => `${show(i.input)} is not a network interface name` })
    .default(DEFAULTS.loadBalancer.interface),
  virtualRouterId: intLike(1, 255).default(DEFAULTS.loadBalancer.virtualRouterId),
  port: port.default(DEFAULTS.loadBalancer.port),
  ingress: z.strictObject({ http: IngressPortSchema.optional(), https: IngressPortSchema.optional() }).optional(),
});

/** Pinned SHA-256 digests of a download, per architecture (etcd, containerd, runc): lower-cased. */
const sha256Map = z
  .partialRecord(enumOf(ARCHES), str("a SHA-256 hex digest").regex(/^[0-9a-fA-F]{64}$/, { error: (i) => `${show(i.input)} is not a SHA-256 hex digest` }))
  .transform((m) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, v.toLowerCase()])) as Partial<Record<Arch, string>>);
/** etcd's own limits: election-timeout ≤ 50000 ms; a heartbeat below 10 ms is below any real round trip. */
const ETCD_HEARTBEAT_RANGE = [10, 5000] as const;
const ETCD_ELECTION_RANGE = [50, 50000] as const;
const EtcdSchema = z.strictObject({
  version: versionString.optional(), // default: see etcdWithVersion
  source: enumOf(["download", "apt", "preinstalled"]).default(DEFAULTS.etcd.source),
  downloadUrl: url(["{version}"]).default(DEFAULTS.etcd.downloadUrl),
  sha256: sha256Map.optional(),
  dataDir: absPath.default(DEFAULTS.etcd.dataDir),
  heartbeatIntervalMs: intLike(ETCD_HEARTBEAT_RANGE[0], ETCD_HEARTBEAT_RANGE[1]).default(DEFAULTS.etcd.heartbeatIntervalMs),
  electionTimeoutMs: intLike(ETCD_ELECTION_RANGE[0], ETCD_ELECTION_RANGE[1]).default(DEFAULTS.etcd.electionTimeoutMs),
  deployment: enumOf(["systemd", "kubeadm"]).default(DEFAULTS.etcd.deployment),
  imageTag: str("an image tag").regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, { error: (i) => `${show(i.input)} is not an image tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})` }).optional(),
}).superRefine((e, ctx) => {
  // etcd refuses to start below 5 heartbeats (its docs: 10 × the peer round trip at least), and
  // counts the timeout in whole heartbeats (1500/200 would silently become 7 ticks = 1400 ms).
  const h = e.heartbeatIntervalMs;
  const t = e.electionTimeoutMs;
  if (t < 5 * h)
    ctx.addIssue({ code: "custom", path: ["electionTimeoutMs"], message: `${t} is less than 5 × heartbeatIntervalMs (${h}): etcd refuses to start; use ≥ ${5 * h} (etcd's default ratio is 10 ×)` });
  else if (t % h !== 0)
    ctx.addIssue({ code: "custom", path: ["electionTimeoutMs"], message: `${t} is not a multiple of heartbeatIntervalMs (${h}): etcd counts it in heartbeats and would use ${Math.floor(t / h) * h} ms` });
});

/**
 * `etcd.version` defaults to DEFAULT_ETCD_VERSION, except with `source: apt`: left unset, it means
 * "the distribution's etcd", checked on each host (≥ MIN_EXTERNAL_ETCD_VERSION) before installing.
 */
function etcdWithVersion<T extends { version?: string; source: string }>(e: T | undefined): T | undefined {
  if (!e || e.version !== undefined || e.source === "apt") return e;
  return { ...e, version: DEFAULTS.etcd.version };
}

/** Go-style duration in hours/minutes (`24h`, `1h30m`, `90m`) or `0` (never expires). */
export function parseTtlSeconds(s: string): number | undefined {
  if (s === "0") return 0;
  const m = /^(?:(\d+)h)?(?:(\d+)m)?$/.exec(s);
  if (!m || (m[1] === undefined && m[2] === undefined)) return undefined;
  const secs = Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60;
  return secs > 0 ? secs : undefined;
}
const ttl = str("a duration").refine((v) => parseTtlSeconds(v) !== undefined, {
  error: (i) => `${show(i.input)} is not a duration like 24h, 1h30m or 90m (0 = never expires)`,
});

/* ---- containerd registry host configuration (hosts.toml) */

const PEM_CERTS = /^\s*(-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\s*)+$/;
const pemCerts = str("PEM certificates").refine((v) => PEM_CERTS.test(v), {
  error: () => "is not PEM CA certificate text (one or more -----BEGIN CERTIFICATE----- blocks; the file's contents, not its path)",
});
/** An endpoint: `https://…`, or `http://…` only when `plainHttp: true` says so; `skipVerify` is refused. */
const endpointFields = {
  url: url(),
  plainHttp: boolLike.default(false),
  ca: pemCerts.optional(),
  skipVerify: z.unknown().optional(),
};
function endpointChecks(e: { url: string; plainHttp: boolean; ca?: string; skipVerify?: unknown }, ctx: z.RefinementCtx) {
  const http = /^http:\/\//i.test(e.url);
  if (http && !e.plainHttp) ctx.addIssue({ code: "custom", path: ["url"], message: `${show(e.url)} is plain HTTP: set plainHttp: true to use it without TLS (or use https://)` });
  if (!http && e.plainHttp) ctx.addIssue({ code: "custom", path: ["plainHttp"], message: `is true but url ${show(e.url)} is not http://` });
  if (http && e.ca) ctx.addIssue({ code: "custom", path: ["ca"], message: "has no effect on a plain-HTTP endpoint" });
  if (e.skipVerify !== undefined)
    ctx.addIssue({ code: "custom", path: ["skipVerify"], message: "is not supported: skipping TLS verification lets anyone on the path serve any image; give the registry's CA certificate in ca (PEM), or use plainHttp on a trusted network" });
}
const RegistryEndpointSchema = z
  .strictObject(endpointFields)
  .superRefine(endpointChecks)
  .transform(({ skipVerify: _s, ...e }) => e);
const RegistryMirrorSchema = z
  .strictObject({
    ...endpointFields,
    capabilities: z
      .array(enumOf(["pull", "resolve", "push"]), { error: (i) => `expected a list of pull, resolve, push, got ${show(i.input)}` })
      .min(1, { error: "needs at least one of pull, resolve, push" })
      .superRefine((cs, ctx) => {
        const dup = cs.filter((c, i) => cs.indexOf(c) !== i);
        if (dup.length) ctx.addIssue({ code: "custom", message: `duplicate capability ${show(dup[0])}` });
      })
      .default(["pull", "resolve"]),
  })
  .superRefine(endpointChecks)
  .transform(({ skipVerify: _s, ...e }) => e);
const RegistrySchema = z
  .strictObject({
    server: RegistryEndpointSchema.optional(),
    mirrors: z.array(RegistryMirrorSchema, { error: (i) => `expected a list of mirrors, got ${show(i.input)}` }).default([]),
  })
  .superRefine((r, ctx) => {
    if (!r.server && r.mirrors.length === 0) ctx.addIssue({ code: "custom", message: "needs a server or at least one mirror" });
    const seen = new Set<string>();
    r.mirrors.forEach((m, i) => {
      if (seen.has(m.url)) ctx.addIssue({ code: "custom", path: ["mirrors", i, "url"], message: `${show(m.url)} is listed twice` });
      seen.add(m.url);
    });
  });
/** A registry host namespace: `_default`, or a registry host name / IPv4 with an optional port (`registry.k8s.io`, `10.0.0.5:5000`). */
export function registryNamespaceProblem(ns: string): string | undefined {
  if (ns === "_default") return undefined;
  const m = /^([^:/]+)(?::(\d{1,5}))?$/.exec(ns);
  if (!m || !(isIPv4(m[1]) || isDnsName(m[1])) || (m[2] !== undefined && (Number(m[2]) < 1 || Number(m[2]) > 65535)))
    return `registry ${show(ns)} is not a registry host[:port] (e.g. registry.k8s.io, 10.0.0.5:5000) or _default`;
  return undefined;
}
const registries = z.record(z.string(), RegistrySchema, { error: (i) => `expected a map of registry → { server?, mirrors }, got ${show(i.input)}` }).superRefine((m, ctx) => {
  for (const k of Object.keys(m)) {
    const problem = registryNamespaceProblem(k);
    if (problem) ctx.addIssue({ code: "custom", path: [k], message: problem });
  }
});

const ContainerdSchema = z.strictObject({
  source: enumOf(["upstream", "distribution", "preinstalled"]).default(DEFAULTS.kubernetes.containerd.source),
  version: versionString.default(DEFAULTS.kubernetes.containerd.version),
  runcVersion: versionString.default(DEFAULTS.kubernetes.containerd.runcVersion),
  downloadUrl: url(["{version}"]).default(DEFAULTS.kubernetes.containerd.downloadUrl),
  sha256: sha256Map.optional(),
  runcDownloadUrl: url(["{version}"]).default(DEFAULTS.kubernetes.containerd.runcDownloadUrl),
  runcSha256: sha256Map.optional(),
  registries: registries.default({}),
  restrictOomScoreAdj: boolLike.default(DEFAULTS.kubernetes.containerd.restrictOomScoreAdj),
});

/* ---- kubeadm image repository, component-config patches */

/** kubeadm's `imageRepository`: `host[:port][/path]`, no scheme, no tag. */
const imageRepository = str("an image repository").superRefine((v, ctx) => {
  if (/^[a-z]+:\/\//i.test(v)) {
    ctx.addIssue({ code: "custom", input: v, message: `${show(v)}: give host[:port][/path] without the scheme (kubeadm adds none; a plain-HTTP registry is declared in containerd.registries with plainHttp)` });
    return;
  }
  const [host, ...path] = v.split("/");
  const hostOk = registryNamespaceProblem(host) === undefined && host !== "_default";
  const pathOk = path.every((c) => /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/.test(c));
  if (!hostOk || !pathOk) ctx.addIssue({ code: "custom", input: v, message: `${show(v)} is not an image repository like registry.example.com:5000/k8s (host[:port] and lower-case path components)` });
});

/** Keys of a component configuration that hakube or kubeadm set: refused in a patch, with the reason. */
const KUBELET_OWNED: Record<string, string> = {
  apiVersion: "is set by hakube (kubelet.config.k8s.io/v1beta1)",
  kind: "is set by hakube (KubeletConfiguration)",
  cgroupDriver: "is owned by hakube: systemd, matching containerd's SystemdCgroup = true",
  failCgroupV1: "is owned by hakube: set hakube:kubernetes.allowCgroupV1 instead",
  clusterDNS: "is set by kubeadm from serviceSubnet (its 10th address, the CoreDNS Service)",
  clusterDomain: "is set by kubeadm: use hakube:kubernetes.dnsDomain",
  containerRuntimeEndpoint: "is owned by hakube: containerd's socket, the one nodeRegistration.criSocket names",
  staticPodPath: "is set by kubeadm: the control plane's static Pods live in /etc/kubernetes/manifests",
};
const KUBELET_WARNED: Record<string, string> = {
  failSwapOn: "node preparation turns swap off on every node anyway, so this changes nothing unless swap is turned on again by hand",
};
const KUBE_PROXY_OWNED: Record<string, string> = {
  apiVersion: "is set by hakube (kubeproxy.config.k8s.io/v1alpha1)",
  kind: "is set by hakube (KubeProxyConfiguration)",
  clusterCIDR: "is set by kubeadm from podSubnet",
  "clientConnection.kubeconfig": "is set by kubeadm: kube-proxy's DaemonSet mounts its kubeconfig at that path",
};
function componentPatch(what: string, fields: readonly string[], owned: Record<string, string>) {
  return z.record(z.string(), z.unknown(), { error: (i) => `expected an object (fields of ${what}), got ${show(i.input)}` }).superRefine((m, ctx) => {
    const walk = (v: unknown, path: (string | number)[]) => {
      const dotted = path.join(".");
      if (owned[dotted]) ctx.addIssue({ code: "custom", path, message: owned[dotted] });
      if (v === null) ctx.addIssue({ code: "custom", path, message: "is null: omit the key instead (patches can set values, not remove them)" });
      else if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...path, i]));
      else if (typeof v === "object") for (const [k, x] of Object.entries(v as Record<string, unknown>)) walk(x, [...path, k]);
    };
    for (const [k, v] of Object.entries(m)) {
      if (!fields.includes(k)) {
        ctx.addIssue({ code: "custom", path: [k], message: `is not a ${what} field${suggest(k, fields)}` });
        continue;
      }
      walk(v, [k]);
    }
  });
}


const KubernetesSchema = z.strictObject({
  version: versionString.default(DEFAULTS.kubernetes.version),
  podSubnet: cidr.default(DEFAULTS.kubernetes.podSubnet),
  serviceSubnet: cidr.default(DEFAULTS.kubernetes.serviceSubnet),
  dnsDomain: str("a DNS domain").refine((d) => isDnsName(d) && !isIP(d), { error: (i) => `${show(i.input)} is not a DNS domain` }).default(DEFAULTS.kubernetes.dnsDomain),
  packages: enumOf(["pkgs.k8s.io", "preinstalled"]).default(DEFAULTS.kubernetes.packages),
  aptRepository: url().optional(),
  encryptionAlgorithm: enumOf(["ECDSA-P256", "RSA-2048"]).default(DEFAULTS.kubernetes.encryptionAlgorithm),
  bootstrapTokenTtl: ttl.default(DEFAULTS.kubernetes.bootstrapTokenTtl),
  containerd: ContainerdSchema.default(() => ({ ...DEFAULTS.kubernetes.containerd, registries: {} })),
  imageRepository: imageRepository.optional(),
  allowCgroupV1: boolLike.default(DEFAULTS.kubernetes.allowCgroupV1),
  kubeletConfiguration: componentPatch("KubeletConfiguration (kubelet.config.k8s.io/v1beta1)", KUBELET_CONFIGURATION_FIELDS, KUBELET_OWNED).optional(),
  kubeProxyConfiguration: componentPatch("KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1)", KUBE_PROXY_CONFIGURATION_FIELDS, KUBE_PROXY_OWNED).optional(),
});

/** An image name without tag or digest: [host[:port]/]path, as a manifest's `image:` fields name it. */
const imageName = str("an image name").superRefine((v, ctx) => {
  const parts = v.split("/");
  const host = parts.length > 1 && /[.:]|^localhost$/.test(parts[0]) ? parts.shift()! : undefined;
  const hostOk = host === undefined || registryNamespaceProblem(host) === undefined;
  const pathOk = parts.length > 0 && parts.every((c) => /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/.test(c));
  if (!hostOk || !pathOk) ctx.addIssue({ code: "custom", input: v, message: `${show(v)} is not an image name like ghcr.io/flannel-io/flannel (no tag; host[:port] and lower-case path components)` });
});
const imageTag = str("an image tag").regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, { error: (i) => `${show(i.input)} is not an image tag` });
const imageDigest = str("an image digest").regex(/^sha256:[0-9a-f]{64}$/, { error: (i) => `${show(i.input)} is not a digest like sha256:<64 hex digits>` });
const CniImageSchema = z
  .strictObject({ name: imageName, newName: imageName.optional(), newTag: imageTag.optional(), digest: imageDigest.optional() })
  .superRefine((v, ctx) => {
    if (v.newName === undefined && v.newTag === undefined && v.digest === undefined)
      ctx.addIssue({ code: "custom", input: v, message: `renames nothing: give newName, newTag or digest` });
    if (v.newTag !== undefined && v.digest !== undefined) ctx.addIssue({ code: "custom", path: ["digest"], input: v, message: `give newTag or digest, not both` });
  });
const k8sName = str("a Kubernetes object name").regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, { error: (i) => `${show(i.input)} is not a Kubernetes object name` });
const CniPatchSchema = z.strictObject({
  target: z.strictObject({
    group: str("an API group").optional(),
    version: str("an API version").optional(),
    kind: str("a kind").regex(/^[A-Z][A-Za-z0-9]*$/, { error: (i) => `${show(i.input)} is not a kind like ConfigMap` }),
    name: k8sName,
    namespace: k8sName.optional(),
  }),
  patch: z.record(z.string(), z.unknown(), { error: (i) => `expected a strategic-merge patch object (apiVersion, kind, metadata, …), got ${show(i.input)}` }).superRefine((v, ctx) => {
    for (const k of ["apiVersion", "kind"] as const)
      if (typeof v[k] !== "string") ctx.addIssue({ code: "custom", path: [k], input: v[k], message: `is required in a strategic-merge patch (kustomize needs it to find the object's schema)` });
    const md = v.metadata as Record<string, unknown> | undefined;
    if (typeof md !== "object" || md === null || typeof md.name !== "string") ctx.addIssue({ code: "custom", path: ["metadata", "name"], input: md, message: `is required in a strategic-merge patch` });
  }),
});

const CniSchema = z.strictObject({
  plugin: enumOf(["calico", "flannel", "cilium", "none"]).default(DEFAULTS.cni.plugin),
  manifestUrl: url().optional(),
  images: z.array(CniImageSchema, { error: (i) => `expected a list of { name, newName?, newTag?, digest? }, got ${show(i.input)}` }).optional(),
  patches: z.array(CniPatchSchema, { error: (i) => `expected a list of { target: { kind, name, namespace? }, patch }, got ${show(i.input)}` }).optional(),
});

const scalarSchemas = {
  clusterName: str("a cluster name").regex(/^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/, {
    error: (i) => `${show(i.input)} must match ^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$`,
  }),
  sshUser: str("a user name").regex(/^[a-z_][a-z0-9_.-]{0,31}$/, { error: (i) => `${show(i.input)} is not a user name` }),
  sshPort: port,
  strictHostKeys: boolLike,
};

/** Every key of the contract (without namespace). */
export const CONFIG_KEYS = [
  "clusterName",
  "sshUser",
  "sshPort",
  "sshPrivateKey",
  "strictHostKeys",
  "hosts",
  "loadBalancer",
  "etcd",
  "kubernetes",
  "cni",
] as const;

/* ------------------------------------------------------------------ problem collection */

type Path = (string | number)[];

export function keyPath(path: Path, namespace: string = NAMESPACE): string {
  let out = namespace;
  path.forEach((p, i) => {
    if (typeof p === "number") out += `[${p}]`;
    else if (i === 0) out += `:${p}`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(p)) out += `.${p}`;
    else out += `[${JSON.stringify(p)}]`;
  });
  return out;
}

class Problems {
  readonly list: string[] = [];
  constructor(readonly namespace: string = NAMESPACE) {}
  add(path: Path, message: string) {
    this.list.push(`${keyPath(path, this.namespace)}: ${message}`);
  }
  fromZod(base: Path, error: z.ZodError) {
    for (const issue of error.issues) {
      const path = [...base, ...(issue.path as Path)];
      if (issue.code === "unrecognized_keys") {
        for (const k of issue.keys) this.add([...path, k], `unknown key${suggest(k, ALL_OBJECT_KEYS)}`);
      } else if (issue.code === "invalid_type" && issue.input === undefined) {
        this.add(path, "is required");
      } else {
        this.add(path, issue.message);
      }
    }
  }
}

/** Every key an object in the contract accepts, for "did you mean" hints. */
const ALL_OBJECT_KEYS = [
  ...Object.keys(HostSchema.shape),
  ...Object.keys(LoadBalancerSchema.shape),
  ...Object.keys(EtcdSchema.shape),
  ...Object.keys(KubernetesSchema.shape),
  ...Object.keys(CniSchema.shape),
  ...Object.keys(ContainerdSchema.shape),
  "server",
  "mirrors",
  "url",
  "plainHttp",
  "ca",
  "capabilities",
  "http",
  "https",
  "nodePort",
];

function suggest(key: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(key.length / 3)) ? ` (did you mean "${best}"?)` : "";
}
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length][b.length];
}

function parseJson(p: Problems, key: string, raw: string | undefined): unknown {
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    p.add([key], `expected structured YAML (an object or list), got ${show(raw.length > 40 ? raw.slice(0, 40) + "…" : raw)}`);
    return null;
  }
}

function parseWith<S extends z.ZodType>(p: Problems, path: Path, schema: S, value: unknown): z.output<S> | undefined {
  const r = schema.safeParse(value, { reportInput: true });
  if (r.success) return r.data;
  p.fromZod(path, r.error);
  return undefined;
}

/** A parsed host with the cluster-wide SSH defaults applied and `internalAddress` filled in. */
function normalizeHost(p: Problems, i: number, h: z.output<typeof HostSchema>, user: string, port: number): HostSpec {
  const internalAddress = h.internalAddress ?? (isIPv4(h.address) ? h.address : undefined);
  if (internalAddress === undefined) p.add(["hosts", i, "internalAddress"], `is required because address ${show(h.address)} is not an IPv4 address`);
  return {
    name: h.name,
    address: h.address,
    internalAddress: internalAddress ?? "",
    roles: h.roles,
    user: h.user ?? user,
    port: h.port ?? port,
    ...(h.hostKey ? { hostKey: h.hostKey } : {}),
    labels: (h.labels ?? {}) as Record<string, string>,
    taints: h.taints ?? [],
  };
}

/* ------------------------------------------------------------------ the parser */

export function parseClusterSpec(raw: RawConfig): SpecResult {
  const p = new Problems();
  const warnings: string[] = [];
  const v = raw.values;

  for (const k of Object.keys(v)) {
    if (v[k] !== undefined && !(CONFIG_KEYS as readonly string[]).includes(k)) p.add([k], `unknown key${suggest(k, CONFIG_KEYS)}`);
  }

  const emptyAsUnset = (s: string | undefined) => (s === undefined || s === "" ? undefined : s);
  const clusterName = parseWith(p, ["clusterName"], scalarSchemas.clusterName, emptyAsUnset(v.clusterName) ?? raw.stackName);
  const sshUser = parseWith(p, ["sshUser"], scalarSchemas.sshUser, emptyAsUnset(v.sshUser) ?? DEFAULTS.sshUser);
  const sshPort = parseWith(p, ["sshPort"], scalarSchemas.sshPort, emptyAsUnset(v.sshPort) ?? DEFAULTS.sshPort);
  const strictHostKeys = parseWith(p, ["strictHostKeys"], scalarSchemas.strictHostKeys, emptyAsUnset(v.strictHostKeys) ?? DEFAULTS.strictHostKeys);

  if (v.sshPrivateKey === undefined || v.sshPrivateKey === "") p.add(["sshPrivateKey"], "is required: pulumi config set --secret hakube:sshPrivateKey < ~/.ssh/id_ed25519");
  else if (!raw.secretKeys.has("sshPrivateKey"))
    p.add(["sshPrivateKey"], "is stored in plain text in the stack file; set it again with `pulumi config set --secret hakube:sshPrivateKey < key`");

  const hostsRaw = parseJson(p, "hosts", v.hosts);
  let hosts: z.output<typeof HostSchema>[] | undefined;
  if (hostsRaw === undefined) p.add(["hosts"], "is required: a list of hosts with name, address and roles");
  else if (hostsRaw !== null) {
    if (!Array.isArray(hostsRaw)) p.add(["hosts"], `expected a list of hosts, got ${show(hostsRaw)}`);
    else if (hostsRaw.length === 0) p.add(["hosts"], "is empty: at least one host each with roles etcd, controlplane and loadbalancer");
    else {
      const parsed = hostsRaw.map((h, i) => parseWith(p, ["hosts", i], HostSchema, h));
      if (parsed.every((h) => h !== undefined)) hosts = parsed as z.output<typeof HostSchema>[];
    }
  }

  const objectKey = <S extends z.ZodType>(key: string, schema: S, required: boolean) => {
    const value = parseJson(p, key, v[key]);
    if (value === null) return undefined;
    if (value === undefined && required) return undefined;
    if (value !== undefined && (typeof value !== "object" || Array.isArray(value))) {
      p.add([key], `expected an object (structured YAML under ${NAMESPACE}:${key}), got ${show(value)}`);
      return undefined;
    }
    return parseWith(p, [key], schema, value ?? {});
  };
  const needsLb = hosts === undefined || hosts.some((h) => h.roles.includes("loadbalancer"));
  if (v.loadBalancer === undefined && needsLb && hostsRaw !== undefined)
    p.add(["loadBalancer"], "is required: the load balancers need at least { vip }");
  const loadBalancer = objectKey("loadBalancer", LoadBalancerSchema, true);
  const etcd = etcdWithVersion(objectKey("etcd", EtcdSchema, false));
  const kubernetes = objectKey("kubernetes", KubernetesSchema, false);
  const cni = objectKey("cni", CniSchema, false);

  /* ---- cross-field rules, on whatever parsed ---- */
  let normHosts: HostSpec[] | undefined;
  if (hosts && sshUser !== undefined && sshPort !== undefined) {
    normHosts = hosts.map((h, i) => normalizeHost(p, i, h, sshUser, sshPort));
    checkHosts(p, warnings, normHosts, strictHostKeys ?? false);
    checkNodeLabels(p, normHosts);
  }
  if (normHosts && loadBalancer) checkLoadBalancer(p, normHosts, loadBalancer);
  if (kubernetes) checkKubernetes(p, normHosts, kubernetes, loadBalancer);
  if (kubernetes) checkContainerd(p, kubernetes, rawObject(v.kubernetes)?.containerd);
  if (kubernetes) checkNodeSettings(p, warnings, kubernetes);
  if (cni && cni.plugin === "none") for (const k of ["manifestUrl", "images", "patches"] as const) if (cni[k] !== undefined) p.add(["cni", k], `has no effect with plugin "none"`);
  if (cni?.images) {
    const seen = new Map<string, number>();
    cni.images.forEach((im, i) => {
      if (seen.has(im.name)) p.add(["cni", "images", i, "name"], `${show(im.name)} is renamed twice (also at cni.images[${seen.get(im.name)}])`);
      else seen.set(im.name, i);
    });
  }
  if (etcd?.version !== undefined && semver.lt(etcd.version, MIN_EXTERNAL_ETCD_VERSION))
    warnings.push(
      `hakube:etcd.version: ${etcd.version} is older than ${MIN_EXTERNAL_ETCD_VERSION}, the oldest external etcd kubeadm accepts: kubeadm init will refuse it (fine for an etcd-only cluster)`,
    );
  if (cni && cni.plugin === "cilium" && !cni.manifestUrl)
    p.add(["cni", "manifestUrl"], `is required with plugin "cilium" (Cilium publishes no plain manifest): render one with \`helm template cilium cilium/cilium --version ${CNI_CILIUM} --namespace kube-system --set ipam.mode=kubernetes\` and host it (see docs/kubernetes.md)`);
  if (etcd && normHosts) checkEtcdDeployment(p, normHosts, etcd as EtcdSpec);
  if (etcd && etcd.source !== "download") {
    if (v.etcd && JSON.parse(v.etcd)?.downloadUrl !== undefined) p.add(["etcd", "downloadUrl"], `is only used with source "download" (source is ${show(etcd.source)})`);
    if (etcd.sha256) p.add(["etcd", "sha256"], `is only used with source "download" (source is ${show(etcd.source)})`);
  }

  if (p.list.length) throw new ConfigError(p.list);
  return {
    spec: {
      clusterName: clusterName!,
      strictHostKeys: strictHostKeys!,
      hosts: normHosts!,
      loadBalancer: loadBalancer! as LoadBalancerSpec,
      etcd: etcd! as EtcdSpec,
      kubernetes: kubernetes! as KubernetesSpec,
      cni: cni! as CniSpec,
    },
    warnings,
  };
}

/**
 * `etcd.deployment: kubeadm`: the image needs a version to be tagged with, and every etcd host runs
 * a kubelet of its own (standalone, only etcd's static pod), so it cannot also be a Kubernetes node.
 */
function checkEtcdDeployment(p: Problems, hosts: HostSpec[], etcd: EtcdSpec): void {
  if (etcd.deployment !== "kubeadm") {
    if (etcd.imageTag !== undefined) p.add(["etcd", "imageTag"], `is only used with deployment "kubeadm" (deployment is ${show(etcd.deployment)})`);
    return;
  }
  if (etcd.version === undefined && etcd.imageTag === undefined)
    p.add(["etcd", "version"], `is required with deployment "kubeadm" and source "apt": the etcd image is tagged <version>-0 (or set etcd.imageTag), and etcdctl on the hosts must match it`);
  hosts.forEach((h, i) => {
    const other = h.roles.filter((r) => r === "controlplane" || r === "worker");
    if (h.roles.includes("etcd") && other.length)
      p.add(["hosts", i, "roles"], `${h.name} has role etcd and ${other.join(" and ")}: with etcd.deployment "kubeadm" an etcd host runs a standalone kubelet for etcd's static pod only, so it cannot be a Kubernetes node too (give etcd its own hosts, or use deployment "systemd")`);
  });
}

/** A JSON object value of a raw key, or undefined (parse errors were reported already). */
function rawObject(raw: string | undefined): Record<string, any> | undefined {
  if (raw === undefined) return undefined;
  try {
    const v = JSON.parse(raw);
    return v && typeof v === "object" && !Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Labels the kubelet may set on its own Node at registration (`--node-labels`, checked by the
 * NodeRestriction admission plugin): anything outside the kubernetes.io / k8s.io namespaces, the
 * well-known topology/instance labels, and the kubelet.kubernetes.io / node.kubernetes.io namespaces.
 * `node-role.kubernetes.io/*` is not among them (the kubelet refuses to start).
 */
export function isKubeletSettableLabel(key: string): boolean {
  const slash = key.indexOf("/");
  const ns = slash >= 0 ? key.slice(0, slash) : "";
  const inNs = (n: string, base: string) => n === base || n.endsWith(`.${base}`);
  if (inNs(ns, "node-restriction.kubernetes.io")) return false;
  if (!inNs(ns, "kubernetes.io") && !inNs(ns, "k8s.io")) return true;
  const allowed = [
    "kubernetes.io/hostname",
    "kubernetes.io/arch",
    "kubernetes.io/os",
    "kubernetes.io/instance-type",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.kubernetes.io/zone",
    "failure-domain.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "node.kubernetes.io/instance-type",
  ];
  return allowed.includes(key) || inNs(ns, "kubelet.kubernetes.io") || inNs(ns, "node.kubernetes.io");
}

function checkNodeLabels(p: Problems, hosts: HostSpec[]) {
  hosts.forEach((h, i) => {
    if (!h.roles.includes("controlplane") && !h.roles.includes("worker")) return;
    for (const k of Object.keys(h.labels)) {
      if (!isKubeletSettableLabel(k))
        p.add(["hosts", i, "labels", k], `the kubelet may not set labels in the kubernetes.io/k8s.io namespaces (except the well-known ones and node.kubernetes.io/…): use another prefix, e.g. example.com/${k.slice(k.indexOf("/") + 1)}, or label the node with kubectl`);
    }
  });
}

function checkContainerd(p: Problems, k: z.output<typeof KubernetesSchema>, raw: Record<string, unknown> | undefined) {
  const c = k.containerd;
  if (c.source !== "upstream") {
    for (const f of ["version", "runcVersion", "downloadUrl", "sha256", "runcDownloadUrl", "runcSha256"] as const)
      if (raw && raw[f] !== undefined) p.add(["kubernetes", "containerd", f], `is only used with source "upstream" (source is ${show(c.source)})`);
    return;
  }
  const ranges = containerdRanges(k.version);
  const ok = ranges.some((r) => semver.gte(c.version, r.min) && (r.below === undefined || semver.lt(c.version, r.below)));
  if (!ok) p.add(["kubernetes", "containerd", "version"], `${c.version} is not supported with Kubernetes ${k.version} (needs ${describeRanges(ranges)})`);
}

/** Rules of the node settings beyond their schema: cgroup v1, the kubelet patch. Warnings name the key path. */
function checkNodeSettings(p: Problems, warnings: string[], k: z.output<typeof KubernetesSchema>) {
  const minor = semver.minor(k.version);
  const at = (path: Path) => keyPath(path, p.namespace);
  if (k.allowCgroupV1) {
    if (minor < CGROUP_V1_FAIL_BY_DEFAULT_MINOR)
      warnings.push(`${at(["kubernetes", "allowCgroupV1"])}: Kubernetes ${k.version} still runs on cgroup v1 by default; the setting only matters from 1.${CGROUP_V1_FAIL_BY_DEFAULT_MINOR}`);
    else
      warnings.push(
        `${at(["kubernetes", "allowCgroupV1"])}: cgroup v1 is unsupported since Kubernetes 1.${CGROUP_V1_FAIL_BY_DEFAULT_MINOR} (KEP-5573) and a later release will remove it: the kubelet runs with failCgroupV1: false and kubeadm's SystemVerification preflight is skipped; move the hosts to cgroup v2 (systemd.unified_cgroup_hierarchy=1)`,
      );
    if (minor > CGROUP_V1_NEWEST_CHECKED_MINOR)
      warnings.push(`${at(["kubernetes", "allowCgroupV1"])}: hakube has not checked whether the kubelet of Kubernetes ${k.version} still accepts failCgroupV1: false (checked up to 1.${CGROUP_V1_NEWEST_CHECKED_MINOR})`);
    if (k.kubeletConfiguration?.singleProcessOOMKill === false)
      p.add(["kubernetes", "kubeletConfiguration", "singleProcessOOMKill"], "must not be false on cgroup v1 hosts (the kubelet refuses it; allowCgroupV1 is true)");
  }
  for (const [key, why] of Object.entries(KUBELET_WARNED))
    if (k.kubeletConfiguration && key in k.kubeletConfiguration) warnings.push(`${at(["kubernetes", "kubeletConfiguration", key])}: ${why}`);
}

function checkHosts(p: Problems, warnings: string[], hosts: HostSpec[], strict: boolean) {
  const firstBy = (key: (h: HostSpec) => string, field: string) => {
    const seen = new Map<string, number>();
    hosts.forEach((h, i) => {
      const k = key(h);
      if (k === "") return;
      if (seen.has(k)) p.add(["hosts", i, field], `${show(k)} is already used by hakube:hosts[${seen.get(k)}]`);
      else seen.set(k, i);
    });
  };
  firstBy((h) => h.name, "name");
  firstBy((h) => h.internalAddress, "internalAddress");

  const count = (r: Role) => hosts.filter((h) => h.roles.includes(r)).length;
  const etcd = count("etcd");
  const cps = count("controlplane");
  const lbs = count("loadbalancer");
  const workers = count("worker");
  if (etcd === 0) p.add(["hosts"], "no host has role etcd; etcd needs 1, 3, 5 or 7 members");
  else if (etcd % 2 === 0) p.add(["hosts"], `${etcd} etcd members; etcd needs an odd count (1, 3, 5 or 7)`);
  else if (etcd > 7) p.add(["hosts"], `${etcd} etcd members; more than 7 slows every write (use 1, 3, 5 or 7)`);
  else if (etcd === 1) warnings.push("hakube:hosts: 1 etcd member: not highly available (losing it loses the cluster's state); use 3 or 5");
  if (cps === 0) p.add(["hosts"], "no host has role controlplane; at least 1 is needed");
  else if (cps === 1) warnings.push("hakube:hosts: 1 control plane: not highly available; use at least 2 (3 recommended)");
  if (lbs === 0) p.add(["hosts"], "no host has role loadbalancer; at least 1 is needed for the API endpoint");
  else if (lbs === 1) warnings.push("hakube:hosts: 1 load balancer: the VIP has no standby; use 2");
  if (cps > 0 && workers === 0)
    warnings.push("hakube:hosts: no worker hosts: ordinary Pods (CoreDNS too) stay Pending while the control planes keep their NoSchedule taint");

  if (strict) {
    hosts.forEach((h, i) => {
      if (!h.hostKey) p.add(["hosts", i, "hostKey"], "is required because hakube:strictHostKeys is true");
    });
  } else {
    const missing = hosts.filter((h) => !h.hostKey).map((h) => h.name);
    if (missing.length)
      warnings.push(`hakube:strictHostKeys is false and ${missing.length} host(s) have no hostKey (${missing.join(", ")}): their SSH server identity is not verified`);
  }
}

function checkLoadBalancer(p: Problems, hosts: HostSpec[], lb: z.output<typeof LoadBalancerSchema>) {
  const vip = ipaddr.IPv4.parse(lb.vip);
  hosts.forEach((h, i) => {
    if (h.address === lb.vip) p.add(["loadBalancer", "vip"], `${lb.vip} is the address of hakube:hosts[${i}] (${h.name}); the VIP must be a free address`);
    else if (h.internalAddress === lb.vip)
      p.add(["loadBalancer", "vip"], `${lb.vip} is the internalAddress of hakube:hosts[${i}] (${h.name}); the VIP must be a free address`);
    if (h.roles.includes("loadbalancer") && isIPv4(h.internalAddress)) {
      const net = ipaddr.IPv4.parse(h.internalAddress);
      if (!vip.match(net, lb.vipPrefix)) {
        const subnet = `${ipaddr.IPv4.networkAddressFromCIDR(`${h.internalAddress}/${lb.vipPrefix}`)}/${lb.vipPrefix}`;
        p.add(["loadBalancer", "vip"], `${lb.vip} is outside ${subnet}, the subnet of load balancer hakube:hosts[${i}] (${h.name}, ${h.internalAddress})`);
      }
    }
  });

  // Ports: the load balancer's frontends must not collide with what the host's other roles listen on.
  const lbPorts: [Path, number][] = [[["loadBalancer", "port"], lb.port]];
  if (lb.ingress?.http) lbPorts.push([["loadBalancer", "ingress", "http", "port"], lb.ingress.http.port]);
  if (lb.ingress?.https) lbPorts.push([["loadBalancer", "ingress", "https", "port"], lb.ingress.https.port]);
  const seen = new Map<number, string>();
  for (const [path, port] of lbPorts) {
    if (seen.has(port)) p.add(path, `${port} is also used by ${seen.get(port)}`);
    else seen.set(port, keyPath(path));
  }
  for (const [path, port] of lbPorts)
    if (port === LB_HEALTH_PORT) p.add(path, `${port} is reserved for the load balancers' local health endpoint (127.0.0.1:${LB_HEALTH_PORT})`);
  hosts.forEach((h, i) => {
    if (!h.roles.includes("loadbalancer")) return;
    for (const [path, port] of lbPorts) {
      const clashes: string[] = [];
      if (h.roles.includes("controlplane") && port === APISERVER_PORT)
        clashes.push(`the API server (${APISERVER_PORT}); a load balancer on a control-plane host needs another port, e.g. 8443`);
      else if (h.roles.includes("controlplane") && (ROLE_PORTS.controlplane as readonly number[]).includes(port)) clashes.push(`a control-plane component (${port})`);
      if ((h.roles.includes("controlplane") || h.roles.includes("worker")) && (ROLE_PORTS.node as readonly number[]).includes(port))
        clashes.push(`the kubelet/kube-proxy (${port})`);
      if (h.roles.includes("etcd") && (ROLE_PORTS.etcd as readonly number[]).includes(port)) clashes.push(`etcd (${port})`);
      for (const c of clashes) p.add(path, `${port} clashes on hakube:hosts[${i}] (${h.name}, loadbalancer + ${h.roles.filter((r) => r !== "loadbalancer").join(" + ")}) with ${c}`);
    }
  });
  if (lb.ingress && !hosts.some((h) => h.roles.includes("worker")))
    p.add(["loadBalancer", "ingress"], "needs at least one host with role worker (the ingress backends)");
}

function checkKubernetes(
  p: Problems,
  hosts: HostSpec[] | undefined,
  k: z.output<typeof KubernetesSchema>,
  lb: z.output<typeof LoadBalancerSchema> | undefined,
) {
  if (semver.lt(k.version, MIN_KUBERNETES_VERSION))
    p.add(["kubernetes", "version"], `${k.version} is too old: hakube writes kubeadm.k8s.io/v1beta4 configuration, which needs Kubernetes ${MIN_KUBERNETES_VERSION} or newer`);
  const [svcAddr, svcPrefix] = ipaddr.parseCIDR(k.serviceSubnet);
  const [podAddr, podPrefix] = ipaddr.parseCIDR(k.podSubnet);
  const overlaps = (a: ipaddr.IPv4, ap: number, b: ipaddr.IPv4, bp: number) => a.match(b, Math.min(ap, bp));
  if (overlaps(svcAddr as ipaddr.IPv4, svcPrefix, podAddr as ipaddr.IPv4, podPrefix))
    p.add(["kubernetes", "serviceSubnet"], `${k.serviceSubnet} overlaps podSubnet ${k.podSubnet}`);
  if (svcPrefix < 12) p.add(["kubernetes", "serviceSubnet"], `${k.serviceSubnet} is larger than the API server allows (/12 at most)`);
  const nodes = hosts?.filter((h) => h.roles.includes("controlplane") || h.roles.includes("worker")).length ?? 0;
  if (podPrefix > 24) p.add(["kubernetes", "podSubnet"], `${k.podSubnet} is smaller than one node's /24 pod range`);
  else if (2 ** (24 - podPrefix) < nodes) p.add(["kubernetes", "podSubnet"], `${k.podSubnet} holds ${2 ** (24 - podPrefix)} node ranges (/24 each) but there are ${nodes} nodes`);
  const inSubnet = (ip: string, a: ipaddr.IPv4 | ipaddr.IPv6, prefix: number) => isIPv4(ip) && ipaddr.IPv4.parse(ip).match(a as ipaddr.IPv4, prefix);
  hosts?.forEach((h, i) => {
    for (const field of ["address", "internalAddress"] as const) {
      const ip = h[field];
      if (field === "internalAddress" && ip === h.address) continue;
      if (inSubnet(ip, svcAddr, svcPrefix)) p.add(["kubernetes", "serviceSubnet"], `${k.serviceSubnet} contains hakube:hosts[${i}].${field} (${ip})`);
      if (inSubnet(ip, podAddr, podPrefix)) p.add(["kubernetes", "podSubnet"], `${k.podSubnet} contains hakube:hosts[${i}].${field} (${ip})`);
    }
  });
  if (lb) {
    if (inSubnet(lb.vip, svcAddr, svcPrefix)) p.add(["kubernetes", "serviceSubnet"], `${k.serviceSubnet} contains the VIP ${lb.vip}`);
    if (inSubnet(lb.vip, podAddr, podPrefix)) p.add(["kubernetes", "podSubnet"], `${k.podSubnet} contains the VIP ${lb.vip}`);
  }
}

/** Hosts with a role, in host order. */
export function hostsWithRole(spec: Pick<ClusterSpec, "hosts">, role: Role): HostSpec[] {
  return spec.hosts.filter((h) => h.roles.includes(role));
}

/* ------------------------------------------------------------------ other programs */

export interface NodePoolConfigInput {
  /** Config namespace for messages (e.g. `workerPool`). */
  namespace: string;
  /** The host list (parsed JSON), same shape as `hakube:hosts`. */
  hosts: unknown;
  /** The `kubernetes` object (parsed JSON), same shape as `hakube:kubernetes`; only the node settings matter. */
  kubernetes?: unknown;
  sshUser?: string;
  sshPort?: number;
  /** Roles the hosts may have (default: worker). */
  roles?: Role[];
}

/**
 * The hosts and Kubernetes node settings of a program that adds nodes to an existing hakube
 * cluster (examples/worker-pool), validated with the same rules as this program's config.
 * Throws one ConfigError naming every problem.
 */
export function parseNodePoolConfig(input: NodePoolConfigInput): { hosts: HostSpec[]; kubernetes: KubernetesSpec; warnings: string[] } {
  const p = new Problems(input.namespace);
  const warnings: string[] = [];
  const roles = input.roles ?? ["worker"];
  const user = input.sshUser ?? DEFAULTS.sshUser;
  const port = input.sshPort ?? DEFAULTS.sshPort;
  const hosts: HostSpec[] = [];
  if (!Array.isArray(input.hosts) || input.hosts.length === 0) p.add(["hosts"], "is required: a non-empty list of hosts with name, address and roles");
  else
    input.hosts.forEach((raw, i) => {
      const h = parseWith(p, ["hosts", i], HostSchema, raw);
      if (!h) return;
      for (const r of h.roles) if (!roles.includes(r)) p.add(["hosts", i, "roles"], `role ${show(r)} is not allowed here (only ${roles.join(", ")})`);
      hosts.push(normalizeHost(p, i, h, user, port));
    });
  if (p.list.length === 0) checkNodeLabels(p, hosts);
  const names = new Set<string>();
  hosts.forEach((h, i) => {
    if (names.has(h.name)) p.add(["hosts", i, "name"], `${show(h.name)} is used twice`);
    names.add(h.name);
  });
  const kubernetes = parseWith(p, ["kubernetes"], KubernetesSchema, input.kubernetes ?? {});
  if (kubernetes) {
    if (semver.lt(kubernetes.version, MIN_KUBERNETES_VERSION))
      p.add(["kubernetes", "version"], `${kubernetes.version} is too old: kubeadm.k8s.io/v1beta4 needs Kubernetes ${MIN_KUBERNETES_VERSION} or newer`);
    checkContainerd(p, kubernetes, input.kubernetes && typeof input.kubernetes === "object" ? ((input.kubernetes as Record<string, any>).containerd ?? undefined) : undefined);
    checkNodeSettings(p, warnings, kubernetes);
    // the kubelet and kube-proxy configurations are uploaded by kubeadm init; a join reads the cluster's
    for (const f of ["kubeletConfiguration", "kubeProxyConfiguration"] as const)
      if (kubernetes[f] !== undefined) p.add(["kubernetes", f], "has no effect on nodes that join an existing cluster (kubeadm join reads the cluster's configuration): set it on the cluster's stack");
  }
  if (p.list.length) throw new ConfigError(p.list);
  return { hosts, kubernetes: kubernetes as KubernetesSpec, warnings };
}

/* ------------------------------------------------------------------ the schemas, for documentation checks */

/**
 * The schema of every stack setting (namespace `hakube`, one entry per `CONFIG_KEYS` key): the
 * README's configuration reference is checked against it, key by key and field by field
 * (test/readme-reference.test.ts). A new setting goes into `CONFIG_KEYS`, its schema here, and
 * its documentation into the README.
 */
export const CONFIG_SCHEMAS: Record<(typeof CONFIG_KEYS)[number], z.ZodType> = {
  clusterName: scalarSchemas.clusterName,
  sshUser: scalarSchemas.sshUser,
  sshPort: scalarSchemas.sshPort,
  sshPrivateKey: z.string(),
  strictHostKeys: scalarSchemas.strictHostKeys,
  hosts: z.array(HostSchema),
  loadBalancer: LoadBalancerSchema,
  etcd: EtcdSchema,
  kubernetes: KubernetesSchema,
  cni: CniSchema,
};
