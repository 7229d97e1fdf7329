/**
 * The kubeadm documents hakube hands to kubeadm, for a full HA shape, checked against a schema of
 * the kubeadm.k8s.io/v1beta4 and kubelet.config.k8s.io/v1beta1 types (docs/research.md §2, from
 * the Go types): field names, types, required fields, no unknown fields. The documents checked are
 * the ones the hosts receive (decoded from the recorded commands' stdin), parsed back from YAML.
 */
import { parseAllDocuments } from "yaml";
import { beforeAll, describe, expect, it } from "vitest";
import { discoveryHash } from "../components/pki/render";
import { CONTROL_PLANE_TAINT, deepMerge, goDuration, nodeTaints, preflightErrorsToIgnore, renderWorkerJoinConfig } from "../components/node/kubeadm";
import { CP_STDIN } from "../components/controlplane/render";
import { WORKER_STDIN } from "../components/workers/render";
import { command, haConfig, stdinItems } from "./harness/fixtures";
import { runProgram, type RunResult } from "./harness/program";

/* ------------------------------------------------------------------ a small schema language */

type Type =
  | "string"
  | "int"
  | "bool"
  | "duration"
  | { enum: string[] }
  | { list: Type }
  | { map: Type }
  | { obj: Schema };
interface Field {
  t: Type;
  required?: boolean;
}
type Schema = Record<string, Field>;

const f = (t: Type, required = false): Field => ({ t, required });
const obj = (s: Schema): Type => ({ obj: s });
const list = (t: Type): Type => ({ list: t });

const GO_DURATION = /^(\d+h)?(\d+m)?(\d+(\.\d+)?s)?$/;

function check(v: unknown, t: Type, at: string, errors: string[]): void {
  if (t === "string") {
    if (typeof v !== "string") errors.push(`${at}: expected string, got ${JSON.stringify(v)}`);
  } else if (t === "int") {
    if (!Number.isInteger(v)) errors.push(`${at}: expected integer, got ${JSON.stringify(v)}`);
  } else if (t === "bool") {
    if (typeof v !== "boolean") errors.push(`${at}: expected boolean, got ${JSON.stringify(v)}`);
  } else if (t === "duration") {
    if (typeof v !== "string" || v === "" || !GO_DURATION.test(v)) errors.push(`${at}: expected a Go duration, got ${JSON.stringify(v)}`);
  } else if ("enum" in t) {
    if (typeof v !== "string" || !t.enum.includes(v)) errors.push(`${at}: ${JSON.stringify(v)} is not one of ${t.enum.join(", ")}`);
  } else if ("list" in t) {
    if (!Array.isArray(v)) errors.push(`${at}: expected a list, got ${JSON.stringify(v)}`);
    else v.forEach((x, i) => check(x, t.list, `${at}[${i}]`, errors));
  } else if ("map" in t) {
    if (!v || typeof v !== "object" || Array.isArray(v)) errors.push(`${at}: expected a map`);
    else for (const [k, x] of Object.entries(v)) check(x, t.map, `${at}.${k}`, errors);
  } else {
    if (!v || typeof v !== "object" || Array.isArray(v)) {
      errors.push(`${at}: expected an object, got ${JSON.stringify(v)}`);
      return;
    }
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!(k in t.obj)) errors.push(`${at}.${k}: unknown field`);
    for (const [k, field] of Object.entries(t.obj)) {
      if (o[k] === undefined || o[k] === null) {
        if (field.required) errors.push(`${at}.${k}: required`);
      } else check(o[k], field.t, `${at}.${k}`, errors);
    }
  }
}

/* ------------------------------------------------------------------ kubeadm.k8s.io/v1beta4 (the types hakube uses, complete per type) */

const Arg = obj({ name: f("string", true), value: f("string", true) });
const EnvVar = obj({ name: f("string", true), value: f("string") });
const HostPathMount = obj({ name: f("string", true), hostPath: f("string", true), mountPath: f("string", true), readOnly: f("bool"), pathType: f("string") });
const Taint = obj({ key: f("string", true), value: f("string"), effect: f({ enum: ["NoSchedule", "PreferNoSchedule", "NoExecute"] }, true), timeAdded: f("string") });
const APIEndpoint = obj({ advertiseAddress: f("string"), bindPort: f("int") });
const Patches = obj({ directory: f("string") });
const Timeouts = obj({
  controlPlaneComponentHealthCheck: f("duration"),
  kubeletHealthCheck: f("duration"),
  kubernetesAPICall: f("duration"),
  etcdAPICall: f("duration"),
  tlsBootstrap: f("duration"),
  discovery: f("duration"),
  upgradeManifests: f("duration"),
});
const NodeRegistrationOptions = obj({
  name: f("string"),
  criSocket: f("string"),
  taints: f(list(Taint)),
  kubeletExtraArgs: f(list(Arg)),
  ignorePreflightErrors: f(list("string")),
  imagePullPolicy: f({ enum: ["Always", "IfNotPresent", "Never"] }),
  imagePullSerial: f("bool"),
});
const BootstrapToken = obj({
  token: f("string", true),
  description: f("string"),
  ttl: f("duration"),
  expires: f("string"),
  usages: f(list("string")),
  groups: f(list("string")),
});
const ControlPlaneComponent = obj({ extraArgs: f(list(Arg)), extraVolumes: f(list(HostPathMount)), extraEnvs: f(list(EnvVar)) });
const APIServer = obj({ extraArgs: f(list(Arg)), extraVolumes: f(list(HostPathMount)), extraEnvs: f(list(EnvVar)), certSANs: f(list("string")) });
const ExternalEtcd = obj({ endpoints: f(list("string"), true), caFile: f("string"), certFile: f("string"), keyFile: f("string"), httpEndpoints: f(list("string")) });
const LocalEtcd = obj({
  imageRepository: f("string"),
  imageTag: f("string"),
  dataDir: f("string"),
  extraArgs: f(list(Arg)),
  extraEnvs: f(list(EnvVar)),
  serverCertSANs: f(list("string")),
  peerCertSANs: f(list("string")),
});
const TypeMeta = { apiVersion: f("string", true), kind: f("string", true) };

const SCHEMAS: Record<string, Schema> = {
  "kubeadm.k8s.io/v1beta4/InitConfiguration": {
    ...TypeMeta,
    bootstrapTokens: f(list(BootstrapToken)),
    dryRun: f("bool"),
    nodeRegistration: f(NodeRegistrationOptions),
    localAPIEndpoint: f(APIEndpoint),
    certificateKey: f("string"),
    skipPhases: f(list("string")),
    patches: f(Patches),
    timeouts: f(Timeouts),
  },
  "kubeadm.k8s.io/v1beta4/ClusterConfiguration": {
    ...TypeMeta,
    etcd: f(obj({ local: f(LocalEtcd), external: f(ExternalEtcd) })),
    networking: f(obj({ serviceSubnet: f("string"), podSubnet: f("string"), dnsDomain: f("string") })),
    kubernetesVersion: f("string"),
    controlPlaneEndpoint: f("string"),
    apiServer: f(APIServer),
    controllerManager: f(ControlPlaneComponent),
    scheduler: f(ControlPlaneComponent),
    dns: f(obj({ imageRepository: f("string"), imageTag: f("string"), disabled: f("bool") })),
    proxy: f(obj({ disabled: f("bool") })),
    certificatesDir: f("string"),
    imageRepository: f("string"),
    featureGates: f({ map: "bool" }),
    clusterName: f("string"),
    encryptionAlgorithm: f({ enum: ["RSA-2048", "RSA-3072", "RSA-4096", "ECDSA-P256", "ECDSA-P384"] }),
    certificateValidityPeriod: f("duration"),
    caCertificateValidityPeriod: f("duration"),
  },
  "kubeadm.k8s.io/v1beta4/JoinConfiguration": {
    ...TypeMeta,
    dryRun: f("bool"),
    nodeRegistration: f(NodeRegistrationOptions),
    caCertPath: f("string"),
    discovery: f(
      obj({
        bootstrapToken: f(obj({ token: f("string", true), apiServerEndpoint: f("string"), caCertHashes: f(list("string")), unsafeSkipCAVerification: f("bool") })),
        file: f(obj({ kubeConfigPath: f("string", true) })),
        tlsBootstrapToken: f("string"),
      }),
      true,
    ),
    controlPlane: f(obj({ localAPIEndpoint: f(APIEndpoint), certificateKey: f("string") })),
    skipPhases: f(list("string")),
    patches: f(Patches),
    timeouts: f(Timeouts),
  },
  // kubelet.config.k8s.io/v1beta1: the fields hakube may set (research §2.10)
  "kubelet.config.k8s.io/v1beta1/KubeletConfiguration": {
    ...TypeMeta,
    cgroupDriver: f({ enum: ["systemd", "cgroupfs"] }),
    failSwapOn: f("bool"),
    failCgroupV1: f("bool"),
    memorySwap: f(obj({ swapBehavior: f({ enum: ["NoSwap", "LimitedSwap"] }) })),
    containerRuntimeEndpoint: f("string"),
    serverTLSBootstrap: f("bool"),
    rotateCertificates: f("bool"),
    // fields the tests patch in through kubernetes.kubeletConfiguration (k8s.io/kubelet v0.37.2 types)
    maxPods: f("int"),
    serializeImagePulls: f("bool"),
    evictionHard: f({ map: "string" }),
    systemReserved: f({ map: "string" }),
  },
  // kubeproxy.config.k8s.io/v1alpha1 (k8s.io/kube-proxy v0.37.2 config/v1alpha1/types.go): the fields hakube's tests set
  "kubeproxy.config.k8s.io/v1alpha1/KubeProxyConfiguration": {
    ...TypeMeta,
    mode: f({ enum: ["", "iptables", "ipvs", "nftables", "kernelspace"] }),
    clusterCIDR: f("string"),
    metricsBindAddress: f("string"),
    featureGates: f({ map: "bool" }),
    conntrack: f(
      obj({
        maxPerCore: f("int"),
        min: f("int"),
        tcpEstablishedTimeout: f("duration"),
        tcpCloseWaitTimeout: f("duration"),
        tcpBeLiberal: f("bool"),
        udpTimeout: f("duration"),
        udpStreamTimeout: f("duration"),
      }),
    ),
  },
};

/** Schema errors of one document ([] when it conforms), plus the kubeadm rules beyond types. */
function validate(doc: Record<string, unknown>): string[] {
  const key = `${doc.apiVersion}/${doc.kind}`;
  const schema = SCHEMAS[key];
  if (!schema) return [`unknown document type ${key}`];
  const errors: string[] = [];
  check(doc, { obj: schema }, String(doc.kind), errors);
  if (doc.kind === "JoinConfiguration") {
    const d = doc.discovery as Record<string, any>;
    if (!!d?.bootstrapToken === !!d?.file) errors.push("JoinConfiguration.discovery: exactly one of bootstrapToken, file");
    const b = d?.bootstrapToken;
    if (b && !b.unsafeSkipCAVerification && !(b.caCertHashes?.length > 0)) errors.push("JoinConfiguration.discovery.bootstrapToken: caCertHashes required without unsafeSkipCAVerification");
  }
  if (doc.kind === "ClusterConfiguration") {
    const e = doc.etcd as Record<string, unknown> | undefined;
    if (e && e.local && e.external) errors.push("ClusterConfiguration.etcd: local and external are exclusive");
  }
  for (const t of (doc.bootstrapTokens as { token: string }[] | undefined) ?? [])
    if (!/^[a-z0-9]{6}\.[a-z0-9]{16}$/.test(t.token)) errors.push(`InitConfiguration.bootstrapTokens: token ${t.token} is malformed`);
  return errors;
}

function parseDocs(text: string): Record<string, unknown>[] {
  const docs = parseAllDocuments(text);
  for (const d of docs) expect(d.errors, text).toEqual([]);
  return docs.map((d) => d.toJS() as Record<string, unknown>);
}

/* ------------------------------------------------------------------ the tests */

let run: RunResult;
let token: string;
let caHash: string;
const byKind = (docs: Record<string, unknown>[], kind: string) => docs.find((d) => d.kind === kind) as Record<string, any>;

beforeAll(async () => {
  run = await runProgram(haConfig());
  if (run.error) throw run.error;
  const strings = run.harness.ofType("random:index/randomString:RandomString");
  token = `${strings.find((s) => s.name.endsWith("id"))!.outputs.result}.${strings.find((s) => s.name.endsWith("secret"))!.outputs.result}`;
  caHash = discoveryHash(run.harness.registrations.find((r) => r.name === "pki-kubernetes-ca-cert")!.outputs.certPem);
});

describe("the schema itself", () => {
  it("rejects unknown fields, wrong types and missing required fields", () => {
    expect(validate({ apiVersion: "kubeadm.k8s.io/v1beta4", kind: "InitConfiguration", bootstrapToken: [] })).toEqual(["InitConfiguration.bootstrapToken: unknown field"]);
    expect(validate({ apiVersion: "kubeadm.k8s.io/v1beta4", kind: "JoinConfiguration", discovery: { bootstrapToken: { token: "abcdef.0123456789abcdef", caCertHashes: [] } } })).toContain(
      "JoinConfiguration.discovery.bootstrapToken: caCertHashes required without unsafeSkipCAVerification",
    );
    expect(validate({ apiVersion: "kubeadm.k8s.io/v1beta4", kind: "JoinConfiguration" })).toContain("JoinConfiguration.discovery: required");
    // v1beta3's map form of extraArgs is not v1beta4
    expect(validate({ apiVersion: "kubeadm.k8s.io/v1beta4", kind: "InitConfiguration", nodeRegistration: { kubeletExtraArgs: { "node-ip": "1.2.3.4" } } })[0]).toMatch(/expected a list/);
    expect(validate({ apiVersion: "kubeadm.k8s.io/v1beta3", kind: "InitConfiguration" })).toEqual(["unknown document type kubeadm.k8s.io/v1beta3/InitConfiguration"]);
  });
});

describe("first control plane: kubeadm-init.yaml (InitConfiguration + ClusterConfiguration + KubeletConfiguration)", () => {
  let docs: Record<string, unknown>[];
  beforeAll(() => {
    docs = parseDocs(stdinItems(command(run.harness, "controlplane-kubeadm-cp1"))[CP_STDIN.initConfig]);
  });

  it("has exactly these three documents, each valid v1beta4 / kubelet v1beta1", () => {
    expect(docs.map((d) => `${d.apiVersion}/${d.kind}`)).toEqual([
      "kubeadm.k8s.io/v1beta4/InitConfiguration",
      "kubeadm.k8s.io/v1beta4/ClusterConfiguration",
      "kubelet.config.k8s.io/v1beta1/KubeletConfiguration",
    ]);
    for (const d of docs) expect(validate(d), JSON.stringify(d)).toEqual([]);
  });

  it("InitConfiguration: the PKI's bootstrap token, node name = host name, advertise address = internalAddress", () => {
    const init = byKind(docs, "InitConfiguration");
    expect(init.bootstrapTokens).toEqual([
      { token, description: "hakube bootstrap token", ttl: "24h0m0s", usages: ["signing", "authentication"], groups: ["system:bootstrappers:kubeadm:default-node-token"] },
    ]);
    expect(init.localAPIEndpoint).toEqual({ advertiseAddress: "10.0.0.31", bindPort: 6443 });
    expect(init.nodeRegistration).toEqual({
      name: "cp1",
      criSocket: "unix:///var/run/containerd/containerd.sock",
      taints: [{ key: "node-role.kubernetes.io/control-plane", effect: "NoSchedule" }],
      kubeletExtraArgs: [{ name: "node-ip", value: "10.0.0.31" }],
    });
    expect(init.certificateKey).toBeUndefined();
  });

  it("ClusterConfiguration: version, VIP endpoint, external etcd with files, networking, SANs, algorithm", () => {
    const c = byKind(docs, "ClusterConfiguration");
    expect(c).toEqual({
      apiVersion: "kubeadm.k8s.io/v1beta4",
      kind: "ClusterConfiguration",
      clusterName: "prod",
      kubernetesVersion: "v1.37.2",
      controlPlaneEndpoint: "10.0.0.100:6443",
      encryptionAlgorithm: "ECDSA-P256",
      certificatesDir: "/etc/kubernetes/pki",
      networking: { podSubnet: "10.244.0.0/16", serviceSubnet: "10.96.0.0/12", dnsDomain: "cluster.local" },
      apiServer: { certSANs: ["10.0.0.100", "10.0.0.11", "10.0.0.12", "lb1.example.com"] },
      etcd: {
        external: {
          endpoints: ["https://10.0.0.21:2379", "https://10.0.0.22:2379", "https://10.0.0.23:2379"],
          caFile: "/etc/kubernetes/pki/etcd/ca.crt",
          certFile: "/etc/kubernetes/pki/apiserver-etcd-client.crt",
          keyFile: "/etc/kubernetes/pki/apiserver-etcd-client.key",
        },
      },
    });
  });

  it("KubeletConfiguration: systemd cgroup driver", () => {
    expect(byKind(docs, "KubeletConfiguration")).toEqual({ apiVersion: "kubelet.config.k8s.io/v1beta1", kind: "KubeletConfiguration", cgroupDriver: "systemd", failSwapOn: true });
  });

  it("RSA-2048 and a non-expiring token when configured", async () => {
    const r = await runProgram(haConfig({ kubernetes: { encryptionAlgorithm: "RSA-2048", bootstrapTokenTtl: "0" } }));
    if (r.error) throw r.error;
    const d = parseDocs(stdinItems(command(r.harness, "controlplane-kubeadm-cp1"))[CP_STDIN.initConfig]);
    for (const x of d) expect(validate(x)).toEqual([]);
    expect(byKind(d, "ClusterConfiguration").encryptionAlgorithm).toBe("RSA-2048");
    expect(byKind(d, "InitConfiguration").bootstrapTokens[0].ttl).toBe("0s");
  });
});

describe("control-plane joins: kubeadm-join.yaml", () => {
  for (const cp of ["cp1", "cp2", "cp3"]) {
    it(`${cp}: JoinConfiguration with controlPlane.localAPIEndpoint, bootstrap-token discovery pinned to the CA hash`, () => {
      const docs = parseDocs(stdinItems(command(run.harness, `controlplane-kubeadm-${cp}`))[CP_STDIN.joinConfig]);
      expect(docs).toHaveLength(1);
      const j = docs[0] as Record<string, any>;
      expect(validate(j)).toEqual([]);
      const ip = { cp1: "10.0.0.31", cp2: "10.0.0.32", cp3: "10.0.0.33" }[cp];
      expect(j.controlPlane).toEqual({ localAPIEndpoint: { advertiseAddress: ip, bindPort: 6443 } });
      expect(j.discovery).toEqual({ bootstrapToken: { apiServerEndpoint: "10.0.0.100:6443", token, caCertHashes: [caHash] } });
      expect(j.nodeRegistration.name).toBe(cp);
      expect(j.nodeRegistration.kubeletExtraArgs[0]).toEqual({ name: "node-ip", value: ip });
    });
  }
  it("labels go to --node-labels (list form), the control-plane taint stays", () => {
    const j = parseDocs(stdinItems(command(run.harness, "controlplane-kubeadm-cp3"))[CP_STDIN.joinConfig])[0] as Record<string, any>;
    expect(j.nodeRegistration.kubeletExtraArgs).toEqual([
      { name: "node-ip", value: "10.0.0.33" },
      { name: "node-labels", value: "topology.kubernetes.io/zone=b" },
    ]);
    expect(j.nodeRegistration.taints).toEqual([CONTROL_PLANE_TAINT]);
  });
});

describe("worker joins", () => {
  for (const w of ["w1", "gpu1"]) {
    it(`${w}: JoinConfiguration without controlPlane; caCertHashes = the PKI hash; never unsafeSkipCAVerification`, () => {
      const items = stdinItems(command(run.harness, `workers-join-${w}`));
      const docs = parseDocs(items[WORKER_STDIN.joinConfig]);
      expect(docs).toHaveLength(1);
      const j = docs[0] as Record<string, any>;
      expect(validate(j)).toEqual([]);
      expect(j.controlPlane).toBeUndefined();
      expect(j.discovery.bootstrapToken.caCertHashes).toEqual([caHash]);
      expect(j.discovery.bootstrapToken.unsafeSkipCAVerification).toBeUndefined();
      expect(JSON.stringify(j)).not.toMatch(/unsafeSkipCAVerification/);
      expect(j.discovery.bootstrapToken.token).toBe(token);
      expect(items[WORKER_STDIN.token]).toBe(token);
      expect(items[WORKER_STDIN.endpoint]).toBe("10.0.0.100:6443");
    });
  }
  it("gpu1: labels (sorted) and taints from the host config, at registration", () => {
    const j = parseDocs(stdinItems(command(run.harness, "workers-join-gpu1"))[WORKER_STDIN.joinConfig])[0] as Record<string, any>;
    expect(j.nodeRegistration).toEqual({
      name: "gpu1",
      criSocket: "unix:///var/run/containerd/containerd.sock",
      taints: [
        { key: "nvidia.com/gpu", value: "true", effect: "NoSchedule" },
        { key: "example.com/maintenance", effect: "NoExecute" },
      ],
      kubeletExtraArgs: [
        { name: "node-ip", value: "10.0.0.42" },
        { name: "node-labels", value: "example.com/gpu=a100,node.kubernetes.io/pool=gpu" },
      ],
    });
  });
  it("w1: an explicit empty taint list", () => {
    const j = parseDocs(stdinItems(command(run.harness, "workers-join-w1"))[WORKER_STDIN.joinConfig])[0] as Record<string, any>;
    expect(j.nodeRegistration.taints).toEqual([]);
  });
  it("rendering never emits unsafeSkipCAVerification, whatever joinInfo holds", () => {
    const text = renderWorkerJoinConfig({ name: "x", internalAddress: "10.0.0.9", roles: ["worker"], labels: {}, taints: [] }, { endpoint: "e:1", token: "abcdef.0123456789abcdef", caCertHash: "sha256:00" });
    expect(text).not.toMatch(/unsafeSkipCAVerification/);
    expect(validate(parseDocs(text)[0])).toEqual([]);
  });
});

describe("taints", () => {
  const h = (roles: string[], taints: { key: string; value?: string; effect: "NoSchedule" | "NoExecute" | "PreferNoSchedule" }[] = []) =>
    ({ name: "n", internalAddress: "10.0.0.1", roles, labels: {}, taints }) as Parameters<typeof nodeTaints>[0];
  it("control plane only: kubeadm's control-plane taint plus the host's", () => {
    expect(nodeTaints(h(["controlplane"]))).toEqual([CONTROL_PLANE_TAINT]);
    expect(nodeTaints(h(["controlplane", "etcd"], [{ key: "a", effect: "NoExecute" }]))).toEqual([CONTROL_PLANE_TAINT, { key: "a", effect: "NoExecute" }]);
  });
  it("control plane + worker: schedulable (only the host's own taints)", () => {
    expect(nodeTaints(h(["controlplane", "worker"]))).toEqual([]);
    expect(nodeTaints(h(["controlplane", "worker"], [{ key: "b", value: "1", effect: "PreferNoSchedule" }]))).toEqual([{ key: "b", value: "1", effect: "PreferNoSchedule" }]);
  });
  it("a host taint equal to the default is not duplicated", () => {
    expect(nodeTaints(h(["controlplane"], [{ ...CONTROL_PLANE_TAINT }]))).toEqual([CONTROL_PLANE_TAINT]);
  });
  it("a control plane that is also a worker gets no NoSchedule taint in its kubeadm config", async () => {
    const r = await runProgram(
      haConfig({
        hosts: [
          { name: "lb1", address: "10.0.0.11", roles: ["loadbalancer"] },
          { name: "lb2", address: "10.0.0.12", roles: ["loadbalancer"] },
          { name: "n1", address: "10.0.0.31", roles: ["controlplane", "etcd", "worker"] },
          { name: "n2", address: "10.0.0.32", roles: ["controlplane", "etcd", "worker"] },
          { name: "n3", address: "10.0.0.33", roles: ["controlplane", "etcd", "worker"] },
        ],
      }),
    );
    if (r.error) throw r.error;
    const init = byKind(parseDocs(stdinItems(command(r.harness, "controlplane-kubeadm-n1"))[CP_STDIN.initConfig]), "InitConfiguration");
    expect(init.nodeRegistration.taints).toEqual([]);
    expect(r.harness.commands().filter((c) => c.name.startsWith("workers-"))).toEqual([]);
  });
});

it("goDuration prints metav1.Duration form", () => {
  expect(goDuration(86400)).toBe("24h0m0s");
  expect(goDuration(5400)).toBe("1h30m0s");
  expect(goDuration(0)).toBe("0s");
});

describe("air-gapped and container-host settings in the kubeadm documents", () => {
  let r: RunResult;
  const docsOf = (name: string, index: number) => parseDocs(stdinItems(command(r.harness, name))[index]);
  beforeAll(async () => {
    r = await runProgram(
      haConfig({
        kubernetes: {
          imageRepository: "mirror.lab:5000/k8s",
          allowCgroupV1: true,
          kubeletConfiguration: { maxPods: 250, evictionHard: { "memory.available": "200Mi" }, serializeImagePulls: false },
          kubeProxyConfiguration: { conntrack: { maxPerCore: 0 }, mode: "nftables" },
        },
      }),
    );
    if (r.error) throw r.error;
  });
  it("init: every document valid; ClusterConfiguration.imageRepository; KubeletConfiguration with failCgroupV1: false and the patch merged; KubeProxyConfiguration emitted", () => {
    const docs = docsOf("controlplane-kubeadm-cp1", CP_STDIN.initConfig);
    expect(docs.map((d) => d.kind)).toEqual(["InitConfiguration", "ClusterConfiguration", "KubeletConfiguration", "KubeProxyConfiguration"]);
    for (const d of docs) expect(validate(d), JSON.stringify(d)).toEqual([]);
    expect(byKind(docs, "ClusterConfiguration").imageRepository).toBe("mirror.lab:5000/k8s");
    expect(byKind(docs, "KubeletConfiguration")).toEqual({
      apiVersion: "kubelet.config.k8s.io/v1beta1",
      kind: "KubeletConfiguration",
      cgroupDriver: "systemd",
      failSwapOn: true,
      failCgroupV1: false,
      maxPods: 250,
      evictionHard: { "memory.available": "200Mi" },
      serializeImagePulls: false,
    });
    expect(byKind(docs, "KubeProxyConfiguration")).toEqual({ apiVersion: "kubeproxy.config.k8s.io/v1alpha1", kind: "KubeProxyConfiguration", conntrack: { maxPerCore: 0 }, mode: "nftables" });
  });
  it("cgroup v1: ignorePreflightErrors [SystemVerification] (only that) in the InitConfiguration and every JoinConfiguration", () => {
    expect(byKind(docsOf("controlplane-kubeadm-cp1", CP_STDIN.initConfig), "InitConfiguration").nodeRegistration.ignorePreflightErrors).toEqual(["SystemVerification"]);
    for (const cp of ["cp1", "cp2", "cp3"]) expect((docsOf(`controlplane-kubeadm-${cp}`, CP_STDIN.joinConfig)[0] as Record<string, any>).nodeRegistration.ignorePreflightErrors).toEqual(["SystemVerification"]);
    for (const w of ["w1", "gpu1"]) {
      const j = docsOf(`workers-join-${w}`, WORKER_STDIN.joinConfig)[0] as Record<string, any>;
      expect(validate(j)).toEqual([]);
      expect(j.nodeRegistration.ignorePreflightErrors).toEqual(["SystemVerification"]);
    }
  });
  it("the previews show the same documents (token redacted), so a changed setting shows in pulumi preview", () => {
    const text = command(r.harness, "controlplane-kubeadm-cp1").inputs.create as string;
    expect(text).toContain("#   imageRepository: mirror.lab:5000/k8s");
    expect(text).toContain("#   failCgroupV1: false");
    expect(text).toContain("#     maxPerCore: 0");
  });
  it("without these settings: no imageRepository, no failCgroupV1, no ignorePreflightErrors, no KubeProxyConfiguration", () => {
    const docs = parseDocs(stdinItems(command(run.harness, "controlplane-kubeadm-cp1"))[CP_STDIN.initConfig]);
    expect(JSON.stringify(docs)).not.toMatch(/imageRepository|failCgroupV1|ignorePreflightErrors|KubeProxyConfiguration/);
  });
  it("before 1.35 cgroup v1 needs no preflight exception (kubeadm only warns): none is emitted", () => {
    expect(preflightErrorsToIgnore({ version: "1.34.3", allowCgroupV1: true })).toEqual([]);
    expect(preflightErrorsToIgnore({ version: "1.35.0", allowCgroupV1: true })).toEqual(["SystemVerification"]);
    expect(preflightErrorsToIgnore({ version: "1.37.2", allowCgroupV1: false })).toEqual([]);
  });
  it("deepMerge: objects merge, lists and scalars replace, inputs untouched", () => {
    const base = { a: { b: 1, c: [1, 2] }, d: "x" };
    const patch = { a: { c: [3], e: { f: true } }, d: "y" };
    expect(deepMerge(base, patch)).toEqual({ a: { b: 1, c: [3], e: { f: true } }, d: "y" });
    expect(base).toEqual({ a: { b: 1, c: [1, 2] }, d: "x" });
  });
});
