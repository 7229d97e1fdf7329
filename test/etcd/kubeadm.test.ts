/**
 * `etcd.deployment: kubeadm` on its own: the stack settings, the documents (kubeadm's
 * ClusterConfiguration, the standalone kubelet's configuration and drop-in), the ports, the
 * scripts' syntax, and the member and delete steps run for real under bash — with fake kubeadm,
 * kubelet, crictl, systemctl, curl and etcdctl (bash functions through BASH_ENV: the scripts set
 * their own PATH) and every host path relocated into a temporary directory. openssl is real: the
 * certificates are validated as on a host. Needs no root, no network, no kubeadm.
 */
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { ConfigError, parseClusterSpec, type HostSpec, type RawConfig } from "../../components/config/spec";
import { portNeeds } from "../../components/config/ports";
import {
  etcdExtraArgs,
  etcdImage,
  etcdImageTag,
  etcdKubeletConfiguration,
  KUBEADM_PATHS,
  kubeadmEtcdDocuments,
  kubeadmMemberSettings,
  renderEtcdKubeletConfig,
  renderKubeadmEtcdConfig,
  renderKubeadmMemberDeleteScript,
  renderKubeadmMemberScript,
  renderKubeletDropIn,
  STAMP_ENV,
  type KubeadmEtcdInput,
  type KubeadmEtcdPaths,
} from "../../components/etcd/kubeadm";
import { DEFAULT_PATHS, DEFAULT_TUNING, initialCluster, memberStamp, PKI_FILES, renderMemberScript, STATE_FILES, type EtcdMember, type EtcdPaths } from "../../components/etcd/render";
import { encodeStdin, renderScript } from "../../components/remote/shell";
import { certRequest, locallySignedCert, privateKey, selfSignedCert } from "../harness/crypto";
import { haHosts, type Host } from "../harness/fixtures";
import { describeReal } from "../harness/real";

/* ------------------------------------------------------------------ config */

const ED_KEY = "k";
function raw(values: Record<string, unknown>): RawConfig {
  return {
    stackName: "staging",
    values: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)])),
    secretKeys: new Set(["sshPrivateKey"]),
  };
}
const values = (etcd?: Record<string, unknown>, hosts: Host[] = haHosts(), over: Record<string, unknown> = {}) => ({
  sshPrivateKey: ED_KEY,
  hosts,
  loadBalancer: { vip: "10.0.0.100" },
  ...(etcd ? { etcd } : {}),
  ...over,
});
/** The problems parseClusterSpec reports ([] when the config is accepted). */
function problems(v: Record<string, unknown>): string[] {
  try {
    parseClusterSpec(raw(v));
    return [];
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
}
const etcdOf = (v: Record<string, unknown>) => parseClusterSpec(raw(v)).spec.etcd;
const withRoles = (roles: Record<number, string[]>) => haHosts().map((h, i) => (roles[i] ? { ...h, roles: roles[i] } : h));

describe("stack settings: etcd.deployment and etcd.imageTag", () => {
  test("default systemd; kubeadm accepted (the image tag defaults to <version>-0)", () => {
    const d = etcdOf(values());
    expect(d.deployment).toBe("systemd");
    expect(d.imageTag).toBeUndefined();
    const k = etcdOf(values({ deployment: "kubeadm" }));
    expect(k.deployment).toBe("kubeadm");
    expect(k.version).toBe("3.6.16");
    expect(etcdImageTag(k)).toBe("3.6.16-0");
    const tagged = etcdOf(values({ deployment: "kubeadm", version: "3.5.24", imageTag: "3.5.24-1" }));
    expect(etcdImageTag(tagged)).toBe("3.5.24-1");
  });

  test("an unknown deployment names hakube:etcd.deployment", () => {
    const p = problems(values({ deployment: "static-pod" }));
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(/^hakube:etcd\.deployment: "static-pod" is not one of systemd, kubeadm/);
  });

  test("imageTag with systemd (given or by default) is refused, naming hakube:etcd.imageTag", () => {
    for (const etcd of [{ imageTag: "3.6.16-0" }, { deployment: "systemd", imageTag: "3.6.16-0" }]) {
      const p = problems(values(etcd));
      expect(p).toEqual(['hakube:etcd.imageTag: is only used with deployment "kubeadm" (deployment is "systemd")']);
    }
  });

  test("a malformed imageTag is refused", () => {
    for (const tag of ["3.6:latest", "-3.6.16", "v 3", "a".repeat(129), ""]) {
      const p = problems(values({ deployment: "kubeadm", imageTag: tag }));
      expect(p, tag).toHaveLength(1);
      expect(p[0], tag).toMatch(/^hakube:etcd\.imageTag: .*is not an image tag/);
    }
    expect(problems(values({ deployment: "kubeadm", imageTag: "v3.6.16_custom-2" }))).toEqual([]);
  });

  test("kubeadm: an etcd host that is also a control plane or worker is refused at hakube:hosts[N].roles", () => {
    const cp = problems(values({ deployment: "kubeadm" }, withRoles({ 4: ["etcd", "controlplane"] })));
    expect(cp).toHaveLength(1);
    expect(cp[0]).toMatch(/^hakube:hosts\[4\]\.roles: etcd3 has role etcd and controlplane: with etcd\.deployment "kubeadm" an etcd host runs a standalone kubelet/);
    const w = problems(values({ deployment: "kubeadm" }, withRoles({ 2: ["worker", "etcd"] })));
    expect(w).toHaveLength(1);
    expect(w[0]).toMatch(/^hakube:hosts\[2\]\.roles: etcd1 has role etcd and worker: /);
    // the same shape is fine with systemd (etcd on the control planes)
    expect(problems(values({ deployment: "systemd" }, withRoles({ 4: ["etcd", "controlplane"] })))).toEqual([]);
  });

  test("kubeadm + source apt needs etcd.version (or imageTag): refused at hakube:etcd.version", () => {
    const p = problems(values({ deployment: "kubeadm", source: "apt" }));
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(/^hakube:etcd\.version: is required with deployment "kubeadm" and source "apt"/);
    expect(problems(values({ deployment: "kubeadm", source: "apt", version: "3.5.24" }))).toEqual([]);
    expect(problems(values({ deployment: "kubeadm", source: "apt", imageTag: "3.5.24-0" }))).toEqual([]);
    // systemd + apt without a version is the distribution's etcd, as before
    expect(problems(values({ source: "apt" }))).toEqual([]);
  });

  test("several problems are reported together", () => {
    const hosts = withRoles({ 2: ["etcd", "worker"], 4: ["etcd", "controlplane"] });
    const p = problems(values({ deployment: "kubeadm", source: "apt" }, hosts, { loadBalancer: { vip: "10.0.0.100", engine: "traefik" } }));
    for (const key of ["hakube:etcd.version:", "hakube:hosts[2].roles:", "hakube:hosts[4].roles:", "hakube:loadBalancer.engine:"])
      expect(p.some((l) => l.startsWith(key)), `${key} in ${JSON.stringify(p)}`).toBe(true);
    expect(p).toHaveLength(4);
    let msg = "";
    try {
      parseClusterSpec(raw(values({ deployment: "kubeadm", source: "apt" }, hosts, { loadBalancer: { vip: "10.0.0.100", engine: "traefik" } })));
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/^invalid stack configuration \(4 problems\):\n {2}- hakube:/);
  });
});

describe("ports: a kubeadm etcd host also holds etcd's metrics port and the kubelet's", () => {
  const h = (roles: HostSpec["roles"]): HostSpec => ({ name: "e", address: "10.0.0.21", internalAddress: "10.0.0.21", roles, user: "root", port: 22, labels: {}, taints: [] });
  test("2381, 10250, 10248 with kubeadm only", () => {
    expect(portNeeds(h(["etcd"]), undefined, { deployment: "systemd" }).map((n) => n.port)).toEqual([2379, 2380]);
    expect(portNeeds(h(["etcd"])).map((n) => n.port)).toEqual([2379, 2380]);
    const k = portNeeds(h(["etcd"]), undefined, { deployment: "kubeadm" });
    expect(k.map((n) => n.port).sort()).toEqual([10248, 10250, 2379, 2380, 2381]);
    expect(k.find((n) => n.port === 10250)?.owners).toEqual(["kubelet"]);
  });
});

/* ------------------------------------------------------------------ documents */

const docMembers: EtcdMember[] = [
  { name: "etcd2", internalAddress: "10.0.0.22" },
  { name: "etcd1", internalAddress: "10.0.0.21" },
  { name: "etcd3", internalAddress: "10.0.0.23" },
];
const docInput = (o: Partial<KubeadmEtcdInput> = {}): KubeadmEtcdInput => ({
  member: docMembers[1],
  members: docMembers,
  clusterName: "prod",
  dataDir: "/srv/etcd",
  tuning: { heartbeatIntervalMs: 150, electionTimeoutMs: 1500 },
  kubernetesVersion: "1.37.2",
  imageTag: "3.6.16-0",
  ...o,
});
const args = (i: KubeadmEtcdInput) => Object.fromEntries(etcdExtraArgs(i).map((a) => [a.name, a.value]));

describe("kubeadm's configuration of a member", () => {
  test("extraArgs: each name once, sorted; the member settings of the systemd deployment", () => {
    const list = etcdExtraArgs(docInput());
    const names = list.map((a) => a.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toEqual([...names].sort());
    for (const a of list) expect(typeof a.value).toBe("string");
    const a = args(docInput());
    expect(a["initial-cluster"]).toBe("etcd1=https://10.0.0.21:2380,etcd2=https://10.0.0.22:2380,etcd3=https://10.0.0.23:2380");
    expect(args(docInput({ members: [...docMembers].reverse() }))["initial-cluster"]).toBe(a["initial-cluster"]);
    expect(a).toMatchObject({
      name: "etcd1",
      "initial-cluster-state": "new",
      "initial-cluster-token": "hakube-prod-etcd",
      "heartbeat-interval": "150",
      "election-timeout": "1500",
      "listen-peer-urls": "https://10.0.0.21:2380",
      "initial-advertise-peer-urls": "https://10.0.0.21:2380",
      "advertise-client-urls": "https://10.0.0.21:2379",
    });
    expect(a["listen-client-urls"].split(",").sort()).toEqual(["https://10.0.0.21:2379", "https://127.0.0.1:2379"]);
    // the data dir is kubeadm's own field, not a flag
    expect(a["data-dir"]).toBeUndefined();
  });

  test("InitConfiguration + ClusterConfiguration: version, etcd.local image, data dir; the stamp env only with a stamp", () => {
    const [init, cluster] = kubeadmEtcdDocuments(docInput({ stamp: "abc123", imageRepository: "mirror.example/k8s" })) as any[];
    expect(init).toMatchObject({ apiVersion: "kubeadm.k8s.io/v1beta4", kind: "InitConfiguration", nodeRegistration: { name: "etcd1" }, localAPIEndpoint: { advertiseAddress: "10.0.0.21" } });
    expect(cluster).toMatchObject({ apiVersion: "kubeadm.k8s.io/v1beta4", kind: "ClusterConfiguration", clusterName: "prod", kubernetesVersion: "v1.37.2", imageRepository: "mirror.example/k8s" });
    expect(cluster.etcd.local).toMatchObject({ imageRepository: "mirror.example/k8s", imageTag: "3.6.16-0", dataDir: "/srv/etcd" });
    expect(cluster.etcd.local.extraArgs).toEqual(etcdExtraArgs(docInput()));
    expect(cluster.etcd.local.extraEnvs).toEqual([{ name: STAMP_ENV, value: "abc123" }]);
    expect(STAMP_ENV).toBe("HAKUBE_ETCD_STAMP");

    const [, bare] = kubeadmEtcdDocuments(docInput()) as any[];
    expect(bare.etcd.local.extraEnvs).toBeUndefined();
    expect(bare.imageRepository).toBeUndefined();
    expect(bare.etcd.local.imageRepository).toBeUndefined();
  });

  test("rendered: two YAML documents that parse back to the same objects (numbers stay strings)", () => {
    const i = docInput({ stamp: "0123456789" });
    const text = renderKubeadmEtcdConfig(i);
    expect(text.split("\n")[0]).toMatch(/^# etcd member etcd1 of hakube cluster prod \(etcd\.deployment kubeadm\)/);
    const docs = parseAllDocuments(text).map((d) => d.toJS());
    expect(docs).toEqual(kubeadmEtcdDocuments(i));
    expect(docs[1].etcd.local.extraEnvs[0].value).toBe("0123456789");
  });

  test("image: tag <version>-0 or the override; repository registry.k8s.io unless kubernetes.imageRepository", () => {
    expect(etcdImageTag({ version: "3.6.16" })).toBe("3.6.16-0");
    expect(etcdImageTag({ version: "3.6.16", imageTag: "3.6.16-2" })).toBe("3.6.16-2");
    expect(etcdImageTag({ version: undefined, imageTag: "3.5.24-0" })).toBe("3.5.24-0");
    expect(() => etcdImageTag({ version: undefined })).toThrow(/needs etcd\.version or etcd\.imageTag/);
    expect(etcdImage(undefined, "3.6.16-0")).toBe("registry.k8s.io/etcd:3.6.16-0");
    expect(etcdImage("mirror.example/k8s", "3.6.16-0")).toBe("mirror.example/k8s/etcd:3.6.16-0");
  });

  test("the member's settings (its stamp's config): image, data dir, flags — not the Kubernetes version", () => {
    const base = kubeadmMemberSettings(docInput());
    expect(kubeadmMemberSettings(docInput({ kubernetesVersion: "1.38.0" }))).toBe(base);
    expect(kubeadmMemberSettings(docInput({ stamp: "x" }))).toBe(base);
    for (const o of [{ imageTag: "3.6.17-0" }, { imageRepository: "mirror.example/k8s" }, { dataDir: "/data/etcd" }, { tuning: DEFAULT_TUNING }, { members: docMembers.slice(1, 2) }])
      expect(kubeadmMemberSettings(docInput(o)), JSON.stringify(o)).not.toBe(base);
    expect(parse(base)).toMatchObject({ image: "registry.k8s.io/etcd:3.6.16-0", dataDir: "/srv/etcd" });
  });
});

describe("the standalone kubelet", () => {
  const standalone = {
    address: "127.0.0.1",
    healthzBindAddress: "127.0.0.1",
    readOnlyPort: 0,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: false } },
    authorization: { mode: "AlwaysAllow" },
    staticPodPath: "/etc/kubernetes/manifests",
    containerRuntimeEndpoint: "unix:///var/run/containerd/containerd.sock",
  };

  test("static pods only, its API on 127.0.0.1 without anonymous or webhook auth; the systemd cgroup driver", () => {
    const c = etcdKubeletConfiguration({});
    expect(c).toMatchObject({ apiVersion: "kubelet.config.k8s.io/v1beta1", kind: "KubeletConfiguration", cgroupDriver: "systemd", ...standalone });
    expect(c.failCgroupV1).toBeUndefined();
    expect(etcdKubeletConfiguration({ allowCgroupV1: true }).failCgroupV1).toBe(false);
    expect(etcdKubeletConfiguration({ allowCgroupV1: false }).failCgroupV1).toBeUndefined();
  });

  test("kubernetes.kubeletConfiguration is merged in, the standalone keys win", () => {
    const c = etcdKubeletConfiguration({
      kubeletConfiguration: {
        maxPods: 20,
        address: "0.0.0.0",
        staticPodPath: "/srv/pods",
        authorization: { mode: "Webhook" },
        authentication: { anonymous: { enabled: true }, x509: { clientCAFile: "/etc/ca.crt" } },
        evictionHard: { "memory.available": "200Mi" },
      },
    });
    expect(c).toMatchObject(standalone);
    expect(c.maxPods).toBe(20);
    expect(c.evictionHard).toEqual({ "memory.available": "200Mi" });
    expect(c.authentication).toEqual({ anonymous: { enabled: false }, webhook: { enabled: false }, x509: { clientCAFile: "/etc/ca.crt" } });
    const text = renderEtcdKubeletConfig({ allowCgroupV1: true, kubeletConfiguration: { maxPods: 20 } }, "prod");
    expect(text.split("\n")[0]).toMatch(/^# the kubelet of an etcd host of hakube cluster prod/);
    expect(parse(text)).toEqual(etcdKubeletConfiguration({ allowCgroupV1: true, kubeletConfiguration: { maxPods: 20 } }));
  });

  test("the drop-in resets the package's ExecStart and starts the kubelet with the standalone configuration", () => {
    const lines = renderKubeletDropIn().split("\n");
    const reset = lines.indexOf("ExecStart=");
    expect(lines.indexOf("[Service]")).toBeGreaterThanOrEqual(0);
    expect(reset).toBeGreaterThan(lines.indexOf("[Service]"));
    expect(lines[reset + 1]).toBe("ExecStart=kubelet --config=/etc/kubernetes/hakube/etcd-kubelet.yaml");
    expect(lines.filter((l) => l.startsWith("ExecStart="))).toHaveLength(2);
    expect(lines).toContain("Restart=always");
    const custom = renderKubeletDropIn({ ...KUBEADM_PATHS, kubeletConfigFile: "/tmp/k.yaml" });
    expect(custom).toMatch(/^ExecStart=\nExecStart=kubelet --config=\/tmp\/k\.yaml$/m);
    // it sorts after the package's 10-kubeadm.conf
    expect(path.basename(KUBEADM_PATHS.kubeletDropIn) > "10-kubeadm.conf").toBe(true);
  });
});

/* ------------------------------------------------------------------ scripts */

const bashSyntax = (body: string) => spawnSync("bash", ["-n"], { input: renderScript({ host: "h", step: "s", body, stdinItems: 3 }) });

describe("script syntax (bash -n)", () => {
  const pems = { caCertPem: "CA\n", serverCertPem: "S\n", peerCertPem: "P\n", healthcheckCertPem: "H\n" };
  const i = docInput();
  const member = (o: Partial<KubeadmEtcdInput> = {}) => {
    const k = { ...i, ...o };
    return renderKubeadmMemberScript({
      ...k,
      ...pems,
      owner: "etcd-member-etcd1",
      stamp: "s",
      version: "3.6.16",
      config: kubeadmMemberSettings(k),
      unit: "",
      kubeadmConfig: renderKubeadmEtcdConfig({ ...k, stamp: "s" }),
      kubeletConfig: renderEtcdKubeletConfig({}, "prod"),
      kubeletDropIn: renderKubeletDropIn(),
      image: etcdImage(undefined, k.imageTag),
    });
  };
  const scripts: Record<string, string> = {
    member: member(),
    "member (single)": member({ members: [docMembers[1]] }),
    delete: renderKubeadmMemberDeleteScript({ owner: "o", dataDir: "/var/lib/etcd" }),
  };
  for (const [name, body] of Object.entries(scripts))
    test(name, () => {
      const r = bashSyntax(body);
      expect(r.stderr.toString()).toBe("");
      expect(r.status).toBe(0);
    });
});

/* ------------------------------------------------------------------ running the member step */

/**
 * The fakes, sourced through BASH_ENV (the scripts set PATH themselves; functions win over it).
 * Every call is logged to $FAKE_ROOT/calls. State: $FAKE_ROOT/kubelet.{enabled,active} (systemd),
 * $FAKE_ROOT/container (the ID crictl reports while $FAKE_MANIFEST exists: the kubelet runs the
 * static pod exactly as long as its manifest is there).
 */
const FAKES = fs.readFileSync(path.join(__dirname, "fake-kubeadm-host.sh"), "utf8");

/** kubeadm's etcd static pod as `kubeadm init phase etcd local` writes it, from the configuration's etcd.local. */
const MANIFEST_AWK = fs.readFileSync(path.join(__dirname, "fake-kubeadm-manifest.awk"), "utf8");

/** 127.88.0.x: loopback addresses nothing listens on (a connect is refused at once). */
const runMembers: EtcdMember[] = [
  { name: "etcd2", internalAddress: "127.88.0.2" },
  { name: "etcd1", internalAddress: "127.88.0.1" },
  { name: "etcd3", internalAddress: "127.88.0.3" },
];
const SELF = runMembers[1];
const OWNER = "etcd-member-etcd1";

const refused = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.connect({ host, port });
    s.setTimeout(1000);
    s.once("connect", () => (s.destroy(), resolve(false)));
    s.once("timeout", () => (s.destroy(), resolve(false)));
    s.once("error", () => resolve(true));
  });

const relocate = <P extends EtcdPaths>(p: P, root: string): P => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, `${root}${v}`])) as unknown as P;

/** Every file and directory under root: mode; for files also mtime and content (to prove nothing was touched). */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      const st = fs.lstatSync(p);
      const rel = path.relative(root, p);
      // a directory's mtime moves when a compare-then-discard temp file comes and goes: not a change
      out[rel] = `${(st.mode & 0o7777).toString(8)}` + (e.isFile() ? ` ${st.mtimeMs} ${fs.readFileSync(p, "utf8")}` : "");
      if (e.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out;
}
const mode = (p: string) => (fs.statSync(p).mode & 0o7777).toString(8).padStart(4, "0");
const read = (p: string) => fs.readFileSync(p, "utf8");

const has = (c: string) => spawnSync("bash", ["-c", `command -v ${c}`]).status === 0;

describeReal("member and delete steps of a kubeadm member, run under bash (fake kubeadm, kubelet, crictl, systemctl, curl, etcdctl)", has("openssl") ? undefined : "openssl is not installed", () => {
  let base: string;
  let fakeDir: string;
  let bashEnv: string;
  let pki: { ca: string; server: string; serverKey: string; peer: string; peerKey: string; hc: string; hcKey: string };
  let nothingListens = true;

  beforeAll(async () => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), "hakube-etcd-kubeadm-"));
    fakeDir = path.join(base, "fakes");
    fs.mkdirSync(fakeDir);
    bashEnv = path.join(fakeDir, "fakes.sh");
    fs.writeFileSync(bashEnv, FAKES);
    fs.writeFileSync(path.join(fakeDir, "manifest.awk"), MANIFEST_AWK);
    const key = () => privateKey({ algorithm: "ECDSA", ecdsaCurve: "P256" });
    const caKey = await key();
    const caCert = await selfSignedCert({ privateKeyPem: caKey.privateKeyPem, subject: { commonName: "etcd-ca" }, isCaCertificate: true, validityPeriodHours: 24, allowedUses: ["cert_signing", "digital_signature"] });
    const leaf = async (cn: string, uses: string[]) => {
      const k = await key();
      const csr = await certRequest({ privateKeyPem: k.privateKeyPem, subject: { commonName: cn }, ipAddresses: [SELF.internalAddress, "127.0.0.1"] });
      const cert = await locallySignedCert({ certRequestPem: csr.certRequestPem, caCertPem: caCert.certPem, caPrivateKeyPem: caKey.privateKeyPem, validityPeriodHours: 24, allowedUses: ["digital_signature", ...uses] });
      return { key: k.privateKeyPem, cert: cert.certPem };
    };
    const server = await leaf("etcd1", ["server_auth", "client_auth"]);
    const peer = await leaf("etcd1", ["server_auth", "client_auth"]);
    const hc = await leaf("kube-etcd-healthcheck-client", ["client_auth"]);
    pki = { ca: caCert.certPem, server: server.cert, serverKey: server.key, peer: peer.cert, peerKey: peer.key, hc: hc.cert, hcKey: hc.key };
    for (const m of runMembers) if (m !== SELF) nothingListens &&= await refused(m.internalAddress, 2379);
  });
  afterAll(() => {
    if (base) fs.rmSync(base, { recursive: true, force: true });
  });

  interface TestHost {
    root: string;
    fake: string;
    paths: KubeadmEtcdPaths;
    dataDir: string;
  }
  let hostCount = 0;
  function newHost(): TestHost {
    const n = ++hostCount;
    const root = path.join(base, `host-${n}`);
    const fake = path.join(base, `fake-${n}`);
    fs.mkdirSync(root);
    fs.mkdirSync(fake);
    return { root, fake, paths: relocate(KUBEADM_PATHS, root), dataDir: `${root}/var/lib/etcd` };
  }

  /** The member step's inputs as EtcdCluster computes them. */
  function kubeadmMember(h: TestHost, o: { members?: EtcdMember[]; kubernetesVersion?: string; image?: string } = {}) {
    const input: KubeadmEtcdInput = {
      member: SELF,
      members: o.members ?? runMembers,
      clusterName: "prod",
      dataDir: h.dataDir,
      tuning: DEFAULT_TUNING,
      kubernetesVersion: o.kubernetesVersion ?? "1.37.2",
      imageTag: "3.6.16-0",
    };
    const pems = { caCertPem: pki.ca, serverCertPem: pki.server, peerCertPem: pki.peer, healthcheckCertPem: pki.hc };
    const config = kubeadmMemberSettings(input);
    const stamp = memberStamp({ config, unit: "", ...pems, source: "download", version: "3.6.16" });
    const kubeadmConfig = renderKubeadmEtcdConfig({ ...input, stamp });
    const kubeletConfig = renderEtcdKubeletConfig({}, "prod");
    const kubeletDropIn = renderKubeletDropIn(h.paths);
    const body = renderKubeadmMemberScript({
      ...input,
      ...pems,
      owner: OWNER,
      stamp,
      version: "3.6.16",
      config,
      unit: "",
      kubeadmConfig,
      kubeletConfig,
      kubeletDropIn,
      image: o.image ?? etcdImage(undefined, input.imageTag),
      paths: h.paths,
      waits: { beforeRestart: 2, afterRestart: 2 },
    });
    return { body, stamp, kubeadmConfig, kubeletConfig, kubeletDropIn };
  }

  /** Run a step body the way hosts.step does (strict mode, helpers, the secret payloads on stdin), with the fakes. */
  function run(h: TestHost, body: string, o: { stdin?: string[]; env?: Record<string, string> } = {}): Promise<{ code: number; stdout: string; stderr: string; calls: string[] }> {
    const stdin = o.stdin ?? [pki.serverKey, pki.peerKey, pki.hcKey];
    const script = renderScript({ host: "etcd1", step: "member", body, stdinItems: stdin.length || undefined });
    const callsFile = path.join(h.fake, "calls");
    fs.writeFileSync(callsFile, "");
    return new Promise((resolve) => {
      const p = spawn("bash", ["-c", script], {
        env: { ...process.env, BASH_ENV: bashEnv, FAKE_ROOT: h.fake, FAKE_DIR: fakeDir, FAKE_MANIFEST: h.paths.manifestFile, ...(o.env ?? {}) },
      });
      // a fake that does not satisfy a wait must fail the test quickly, not after the script's own 60 s
      const killer = setTimeout(() => p.kill("SIGKILL"), 20_000);
      let stdout = "";
      let stderr = "";
      p.stdout.on("data", (d) => (stdout += d));
      p.stderr.on("data", (d) => (stderr += d));
      p.on("close", (code) => {
        clearTimeout(killer);
        resolve({ code: code ?? -1, stdout, stderr, calls: read(callsFile).split("\n").filter(Boolean) });
      });
      p.stdin.end(stdin.length ? encodeStdin(stdin) : "");
    });
  }

  /** A host after a successful first member step (the kubelet started, etcd's container running, its data dir created). */
  async function deployedHost() {
    const h = newHost();
    const m = kubeadmMember(h);
    const r = await run(h, m.body);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    fs.writeFileSync(path.join(h.fake, "container"), "c0ffee01\n");
    fs.mkdirSync(path.join(h.dataDir, "member"));
    fs.writeFileSync(path.join(h.dataDir, "member", "wal"), "data");
    return { h, m };
  }

  const pkiFiles = (h: TestHost) => Object.values(PKI_FILES).map((f) => path.join(h.paths.pkiDir, f));
  const systemctlCalls = (calls: string[]) => calls.filter((c) => c.startsWith("systemctl ") && !/^systemctl (is-enabled|is-active|show) /.test(c));

  test("a fresh host: certificates, kubeadm's static pod, the kubelet's files and hakube's records installed; the kubelet enabled and started", async () => {
    const h = newHost();
    const m = kubeadmMember(h);
    const r = await run(h, m.body);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);

    // certificates and keys where kubeadm's manifest expects them (relocated), keys 0600
    const pems: Record<string, string> = {
      [PKI_FILES.ca]: pki.ca,
      [PKI_FILES.serverCert]: pki.server,
      [PKI_FILES.serverKey]: pki.serverKey,
      [PKI_FILES.peerCert]: pki.peer,
      [PKI_FILES.peerKey]: pki.peerKey,
      [PKI_FILES.healthcheckCert]: pki.hc,
      [PKI_FILES.healthcheckKey]: pki.hcKey,
    };
    expect(fs.readdirSync(h.paths.pkiDir).sort()).toEqual(Object.keys(pems).sort());
    for (const [f, pem] of Object.entries(pems)) {
      const p = path.join(h.paths.pkiDir, f);
      expect(read(p).trim(), f).toBe(pem.trim());
      expect(mode(p), f).toBe(f.endsWith(".key") ? "0600" : "0644");
    }

    // the manifest is what kubeadm wrote, with the image, the member, the member list, the data dir and the stamp
    const manifest = read(h.paths.manifestFile);
    expect(manifest).toBe(read(path.join(h.fake, "kubeadm-wrote.yaml")));
    expect(mode(h.paths.manifestFile)).toBe("0600");
    const lines = manifest.split("\n").map((l) => l.trim());
    expect(lines).toContain("image: registry.k8s.io/etcd:3.6.16-0");
    expect(lines).toContain("- --name=etcd1");
    expect(lines).toContain(`- --initial-cluster=${initialCluster(runMembers)}`);
    expect(lines).toContain(`- --data-dir=${h.dataDir}`);
    expect(lines).toContain(`value: ${m.stamp}`);

    // kubeadm's configuration (0600 in hakube's 0700 directory), the kubelet's configuration and drop-in
    expect(read(h.paths.configFile)).toBe(m.kubeadmConfig.endsWith("\n") ? m.kubeadmConfig : `${m.kubeadmConfig}\n`);
    expect(mode(h.paths.configFile)).toBe("0600");
    expect(mode(h.paths.configDir)).toBe("0700");
    expect(read(h.paths.kubeletConfigFile)).toBe(m.kubeletConfig);
    expect(read(h.paths.kubeletDropIn)).toBe(m.kubeletDropIn);
    expect(mode(h.paths.kubeletDropIn)).toBe("0644");
    expect(mode(h.dataDir)).toBe("0700");

    // hakube's records
    const state = (f: string) => read(path.join(h.paths.stateDir, f));
    expect(fs.readdirSync(h.paths.stateDir).sort()).toEqual([...STATE_FILES].sort());
    expect(state("deployment")).toBe("kubeadm\n");
    expect(state("initial-cluster")).toBe(`${initialCluster(runMembers)}\n`);
    expect(state("applied")).toBe(`${m.stamp}\n`);
    expect(state("owner")).toBe(`${OWNER}\n`);

    // kubeadm ran in the stage: validate, then the etcd phase with the stage as its root; the stage is gone
    const kubeadmCalls = r.calls.filter((c) => c.startsWith("kubeadm "));
    expect(kubeadmCalls).toHaveLength(2);
    expect(kubeadmCalls[0]).toMatch(/^kubeadm config validate --config (\S+)\/kubeadm\.yaml$/);
    const stage = /--config (\S+)\/kubeadm\.yaml$/.exec(kubeadmCalls[0])![1];
    expect(kubeadmCalls[1]).toBe(`kubeadm --rootfs ${stage}/root init phase etcd local --config /kubeadm.yaml`);
    expect(fs.existsSync(stage)).toBe(false);

    // the kubelet: its drop-in is new, so systemd reloads, then it is enabled and (re)started with it
    expect(systemctlCalls(r.calls)).toEqual(["systemctl daemon-reload", "systemctl enable --quiet kubelet", "systemctl restart kubelet"]);
    expect(fs.existsSync(path.join(h.fake, "kubelet.enabled"))).toBe(true);
    expect(fs.existsSync(path.join(h.fake, "kubelet.active"))).toBe(true);
    expect(r.calls).toContain("curl -fsS --max-time 2 http://127.0.0.1:10248/healthz");

    expect(r.stdout).toMatch(/^enabled kubelet$/m);
    expect(r.stdout).toMatch(/^restarted kubelet \(its configuration changed\)$/m);
    expect(r.stdout).toMatch(/^wrote etcd's static pod: the kubelet starts etcd1; the health gate waits for the cluster$/m);
    expect(r.stdout).toMatch(new RegExp(`^changed ${h.paths.manifestFile.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`, "m"));
    // a new cluster: nothing answers at the other members, so etcdctl is not even asked
    if (nothingListens) expect(r.calls.filter((c) => c.startsWith("etcdctl "))).toEqual([]);
  });

  test("a second run with the same inputs and etcd's container running: nothing changes, nothing restarts", async () => {
    const { h, m } = await deployedHost();
    const before = snapshot(h.root);
    const r = await run(h, m.body);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("ok: etcd1 runs the current configuration\n");
    expect(r.stdout).not.toMatch(/^changed /m);
    expect(systemctlCalls(r.calls)).toEqual([]);
    expect(r.calls.some((c) => /^crictl ps --name \^etcd\$ --state running -q$/.test(c))).toBe(true);
    expect(snapshot(h.root)).toEqual(before);
  });

  test("a Kubernetes upgrade re-renders kubeadm's configuration but restarts neither etcd nor the kubelet", async () => {
    const { h } = await deployedHost();
    const manifest = read(h.paths.manifestFile);
    const up = kubeadmMember(h, { kubernetesVersion: "1.38.0" });
    const r = await run(h, up.body);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`changed ${h.paths.configFile}\nok: etcd1 runs the current configuration\n`);
    expect(read(h.paths.configFile)).toContain("kubernetesVersion: v1.38.0");
    expect(read(h.paths.manifestFile)).toBe(manifest);
    expect(systemctlCalls(r.calls)).toEqual([]);
  });

  for (const [what, records] of [
    ["records deployment systemd", { deployment: "systemd\n", applied: "old-stamp\n" }],
    ["has only `applied` (a systemd member from before the record)", { applied: "old-stamp\n" }],
  ] as const) {
    test(`a host whose state ${what}: switching to kubeadm is refused as a migration, nothing written`, async () => {
      const h = newHost();
      fs.mkdirSync(h.paths.stateDir, { recursive: true });
      for (const [f, c] of Object.entries(records)) fs.writeFileSync(path.join(h.paths.stateDir, f), c);
      const before = snapshot(h.root);
      const r = await run(h, kubeadmMember(h).body);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        "hakube: etcd1: member: etcd runs on etcd1 as hakube's systemd unit etcd.service (etcd.deployment systemd); switching a cluster to etcd.deployment kubeadm is a migration hakube does not do (docs/etcd.md, Deployment): set etcd.deployment back to systemd (nothing was changed on this host)\n",
      );
      expect(snapshot(h.root)).toEqual(before);
      expect(fs.existsSync(h.paths.manifestFile)).toBe(false);
      expect(fs.existsSync(h.paths.pkiDir)).toBe(false);
      expect(r.calls).toEqual([]);
    });
  }

  test("the systemd member step on a host recorded as kubeadm: refused as a migration, nothing written", async () => {
    const h = newHost();
    const paths = relocate(DEFAULT_PATHS, h.root);
    fs.mkdirSync(paths.stateDir, { recursive: true });
    fs.writeFileSync(path.join(paths.stateDir, "deployment"), "kubeadm\n");
    fs.writeFileSync(path.join(paths.stateDir, "applied"), "old-stamp\n");
    const before = snapshot(h.root);
    const body = renderMemberScript({
      member: SELF,
      members: runMembers,
      clusterName: "prod",
      dataDir: h.dataDir,
      owner: OWNER,
      config: "x: 1\n",
      unit: "[Unit]\n",
      caCertPem: pki.ca,
      serverCertPem: pki.server,
      peerCertPem: pki.peer,
      healthcheckCertPem: pki.hc,
      stamp: "s",
      version: "3.6.16",
      paths,
    });
    const r = await run(h, body);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^hakube: etcd1: member: etcd runs on etcd1 as a static pod of a standalone kubelet \(etcd\.deployment kubeadm\); switching a cluster to etcd\.deployment systemd is a migration hakube does not do .*\(nothing was changed on this host\)$/m,
    );
    expect(snapshot(h.root)).toEqual(before);
    expect(r.calls).toEqual([]);
  });

  test("a changed member list on a bootstrapped member: refused, nothing swapped in", async () => {
    const { h } = await deployedHost();
    const before = snapshot(h.root);
    const readdressed = runMembers.map((m) => (m.name === "etcd3" ? { ...m, internalAddress: "127.88.0.4" } : m));
    const r = await run(h, kubeadmMember(h, { members: readdressed }).body);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `hakube: etcd1: member: the etcd member list changed: etcd1 was bootstrapped with ${initialCluster(runMembers)}, the configuration now says ${initialCluster(readdressed)}; adding, removing or re-addressing members is not supported yet (docs/etcd.md): restore the previous hosts (nothing was changed on this host)\n`,
    );
    expect(snapshot(h.root)).toEqual(before);
    expect(systemctlCalls(r.calls)).toEqual([]);
  });

  test("etcd data hakube did not bootstrap (no record of its member list): refused, nothing written", async () => {
    const h = newHost();
    fs.mkdirSync(path.join(h.dataDir, "member"), { recursive: true });
    const before = snapshot(h.root);
    const r = await run(h, kubeadmMember(h).body);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^hakube: etcd1: member: ${h.dataDir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/member holds etcd data hakube did not bootstrap`, "m"));
    expect(snapshot(h.root)).toEqual(before);
  });

  test("a static pod from kubeadm that lacks the expected image, or a configuration kubeadm rejects: refused before anything is swapped in", async () => {
    const h = newHost();
    const wrongImage = await run(h, kubeadmMember(h, { image: "registry.k8s.io/etcd:3.6.17-0" }).body);
    expect(wrongImage.code).toBe(1);
    expect(wrongImage.stderr).toBe("hakube: etcd1: member: the static pod kubeadm wrote lacks 'image: registry.k8s.io/etcd:3.6.17-0'\n");
    const rejected = await run(h, kubeadmMember(h).body, { env: { FAKE_KUBEADM_INVALID: 'unknown field "etcd.local.foo"' } });
    expect(rejected.code).toBe(1);
    expect(rejected.stderr).toBe('hakube: etcd1: member: kubeadm config validate rejects the etcd configuration: unknown field "etcd.local.foo"\n');
    expect(fs.readdirSync(h.root)).toEqual([]);
    expect(systemctlCalls([...wrongImage.calls, ...rejected.calls])).toEqual([]);
  });

  test("delete: the static pod, the kubelet's files, kubeadm's configuration, the keys and the records removed; the data kept; the kubelet disabled", async () => {
    const { h } = await deployedHost();
    const del = renderKubeadmMemberDeleteScript({ owner: OWNER, dataDir: h.dataDir, paths: h.paths });
    const r = await run(h, del, { stdin: [] });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    for (const p of [h.paths.manifestFile, h.paths.kubeletDropIn, h.paths.kubeletConfigFile, h.paths.configFile, ...pkiFiles(h), ...STATE_FILES.map((f) => path.join(h.paths.stateDir, f))])
      expect(fs.existsSync(p), p).toBe(false);
    expect(fs.existsSync(h.paths.pkiDir)).toBe(false);
    expect(read(path.join(h.dataDir, "member", "wal"))).toBe("data");
    expect(systemctlCalls(r.calls)).toEqual(["systemctl disable --now --quiet kubelet", "systemctl daemon-reload"]);
    expect(fs.existsSync(path.join(h.fake, "kubelet.enabled"))).toBe(false);
    expect(fs.existsSync(path.join(h.fake, "kubelet.active"))).toBe(false);
    // it waited for the kubelet to stop etcd's container (the fake stops it with the manifest)
    expect(r.calls.filter((c) => c.startsWith("crictl ps"))).not.toEqual([]);
    expect(r.stdout).toMatch(/^removed etcd's static pod$/m);
    expect(r.stdout).toMatch(/^stopped and disabled kubelet \(it ran etcd only\)$/m);
    expect(r.stdout).toMatch(new RegExp(`etcd removed; data kept in ${h.dataDir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\n$`));

    // again (a retried delete): nothing left to do, still fine
    const again = await run(h, del, { stdin: [] });
    expect(again.code).toBe(0);
    expect(again.stdout).not.toMatch(/^removed /m);
  });

  test("delete by a resource that no longer owns the member: everything left running", async () => {
    const { h } = await deployedHost();
    fs.writeFileSync(path.join(h.paths.stateDir, "owner"), "etcd-member-etcd1-renamed\n");
    const before = snapshot(h.root);
    const r = await run(h, renderKubeadmMemberDeleteScript({ owner: OWNER, dataDir: h.dataDir, paths: h.paths }), { stdin: [] });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("etcd here is managed by etcd-member-etcd1-renamed now: left running\n");
    expect(snapshot(h.root)).toEqual(before);
    expect(r.calls).toEqual([]);
    expect(fs.existsSync(path.join(h.fake, "kubelet.active"))).toBe(true);
  });
});
