/**
 * ControlPlane and WorkerPool as the program registers them (recording mocks): names keyed by
 * host, the order (init after the etcd gate and the load balancers, joins one at a time, CNI after
 * init, tokens before joins, drains before resets), no secret in any command text, the outputs,
 * the CNI variants, the scripts' syntax and key behaviours, determinism.
 */
import * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";
import { beforeAll, describe, expect, it } from "vitest";
import { CP_STDIN } from "../components/controlplane/render";
import { TOKENS } from "./harness/mocks";
import { bashSyntax, command, dependencyClosure, haConfig, innerScript, secretValues, shellcheck, stdinItems } from "./harness/fixtures";
import { runProgram, valueOf, type RunResult } from "./harness/program";

let ha: RunResult;
let gated: RunResult;
beforeAll(async () => {
  ha = await runProgram(haConfig());
  if (ha.error) throw ha.error;
  gated = await runProgram(haConfig(), { module: "test/fixtures/gated-program" });
  if (gated.error) throw gated.error;
});

const HOSTS = ["lb1", "lb2", "etcd1", "etcd2", "etcd3", "cp1", "cp2", "cp3", "w1", "gpu1"];

describe("resource names", () => {
  it("every command is `${component}-${step}-${host}` for a configured host", () => {
    for (const c of ha.harness.commands()) {
      const m = /^(hosts|etcd|lb|controlplane|workers)-([a-z]+)-([a-z0-9-]+)$/.exec(c.name);
      expect(m, c.name).not.toBeNull();
      expect(HOSTS, c.name).toContain(m![3]);
    }
  });
  it("the expected steps exist per role", () => {
    const names = new Set(ha.harness.commands().map((c) => c.name));
    for (const h of ["cp1", "cp2", "cp3"])
      for (const s of ["prepare", "kubeadm", "token"]) expect(names, `controlplane-${s}-${h}`).toContain(`controlplane-${s}-${h}`);
    for (const h of ["w1", "gpu1"]) for (const s of ["prepare", "join", "token", "drain"]) expect(names).toContain(`workers-${s}-${h}`);
    expect(names).toContain("controlplane-cni-cp1");
    expect([...names].filter((n) => n.includes("cni"))).toEqual(["controlplane-cni-cp1"]);
    for (const h of ["lb1", "lb2", "etcd1"]) expect([...names].filter((n) => n.endsWith(`-${h}`) && /^(controlplane|workers)-/.test(n))).toEqual([]);
  });
  it("component types", () => {
    expect(ha.harness.ofType("hakube:k8s:ControlPlane").map((r) => r.name)).toEqual(["controlplane"]);
    expect(ha.harness.ofType("hakube:k8s:WorkerPool").map((r) => r.name)).toEqual(["workers"]);
  });
  it("steps a control plane runs for another host are named by that host and say where they run", () => {
    for (const n of ["controlplane-token-cp2", "workers-token-gpu1", "workers-drain-gpu1"]) {
      const c = command(ha.harness, n);
      expect(c.inputs.connection.host, n).toBe("10.0.0.31");
      const target = n.split("-").pop();
      expect(innerScript(c.inputs.create)).toContain(`HAKUBE_HOST=${target} HAKUBE_STEP='${n.split("-")[1]} (on cp1)'`);
    }
    expect(command(ha.harness, "workers-join-gpu1").inputs.connection.host).toBe("10.0.0.42");
  });
});

describe("order", () => {
  const deps = (name: string) => command(gated.harness, name).dependencies ?? [];
  const after = (name: string) => dependencyClosure(gated.harness, name);

  it("kubeadm init waits for the etcd health gate and the load-balancer pair (and the node's preparation)", () => {
    expect(deps("cp-kubeadm-cp1")).toEqual(expect.arrayContaining(["etcd-health-gate", "lb-ready-gate", "cp-prepare-cp1"]));
    expect(after("cp-kubeadm-cp1")).toEqual(expect.objectContaining({}));
    expect([...after("cp-kubeadm-cp1")]).toEqual(expect.arrayContaining(["cp-prepare-cp1", "hosts-preflight-cp1"]));
  });
  it("node preparation does not wait for etcd or the load balancers", () => {
    for (const s of ["prepare"]) {
      const a = after(`cp-${s}-cp2`);
      expect(a.has("etcd-health-gate") || a.has("lb-ready-gate"), s).toBe(false);
    }
  });
  it("control planes join one at a time after init, each after its token step", () => {
    expect(deps("cp-kubeadm-cp2")).toEqual(expect.arrayContaining(["cp-kubeadm-cp1", "cp-token-cp2"]));
    expect(deps("cp-kubeadm-cp3")).toEqual(expect.arrayContaining(["cp-kubeadm-cp2", "cp-token-cp3"]));
    expect(after("cp-token-cp2").has("cp-kubeadm-cp1")).toBe(true);
    expect(after("cp-token-cp3").has("cp-kubeadm-cp2")).toBe(true);
    expect(after("cp-kubeadm-cp3")).toEqual(expect.any(Set));
    for (const g of ["etcd-health-gate", "lb-ready-gate"]) expect(after("cp-kubeadm-cp3").has(g)).toBe(true);
  });
  it("the first control plane's own token step and the CNI come after init", () => {
    expect(deps("cp-token-cp1")).toContain("cp-kubeadm-cp1");
    expect(deps("cp-cni-cp1")).toContain("cp-kubeadm-cp1");
  });
  it("workers: prepared, token ensured on the first control plane, then join; drain after join (so it runs first on delete)", () => {
    expect(deps("pool-join-w1")).toEqual(expect.arrayContaining(["pool-prepare-w1", "pool-token-w1", "cp-kubeadm-cp1"]));
    expect(deps("pool-token-w1")).toContain("cp-kubeadm-cp1");
    expect(deps("pool-drain-w1")).toContain("pool-join-w1");
    // joins run in parallel: no worker join waits for another, nor for the other control planes
    const a = after("pool-join-w1");
    expect([...a].filter((n) => n.includes("join") || n.includes("cp-kubeadm-cp2"))).toEqual([]);
  });
  it("a pool without control-plane access has no token or drain steps; it joins after its preparation", () => {
    const names = gated.harness.commands().map((c) => c.name).filter((n) => n.startsWith("remote-"));
    expect(names.sort()).toEqual(["remote-join-gpu1", "remote-prepare-gpu1"]);
    expect(deps("remote-join-gpu1")).toContain("remote-prepare-gpu1");
  });
});

describe("secrets", () => {
  it("no secret (token, keys, SSH key) appears in any command's create or delete text", () => {
    const secrets = secretValues(ha.harness);
    expect(secrets.length).toBeGreaterThan(8);
    for (const c of ha.harness.commands()) {
      const text = `${c.inputs.create}\n${c.inputs.delete ?? ""}`;
      for (const s of secrets) expect(text.includes(s), `${c.name} contains a secret`).toBe(false);
    }
  });
  it("the token, keys and kubeadm configs reach the hosts on stdin, as secrets", () => {
    for (const n of ["controlplane-kubeadm-cp1", "controlplane-kubeadm-cp2", "controlplane-token-cp2", "workers-join-w1", "workers-token-w1"]) {
      const c = command(ha.harness, n);
      expect(pulumi.runtime.isRpcSecret(c.rawInputs.stdin), n).toBe(true);
      expect(c.inputs.logging, n).toBe("stderr");
    }
    const items = stdinItems(command(ha.harness, "controlplane-kubeadm-cp2"));
    expect(items).toHaveLength(6);
    expect(items[CP_STDIN.caKey]).toMatch(/BEGIN (EC )?PRIVATE KEY/);
    expect(items[CP_STDIN.saKey]).toMatch(/PRIVATE KEY/);
    expect(items[CP_STDIN.etcdClientKey]).toMatch(/PRIVATE KEY/);
    expect(stdinItems(command(ha.harness, "controlplane-kubeadm-cp1"))).toHaveLength(7);
  });
  it("keys are installed 0600 from stdin; the preview shows a token-less kubeadm config", () => {
    const s = innerScript(command(ha.harness, "controlplane-kubeadm-cp1").inputs.create);
    for (const k of ["ca.key", "front-proxy-ca.key", "sa.key", "apiserver-etcd-client.key"])
      expect(s).toMatch(new RegExp(`hakube_put_stdin \\d /etc/kubernetes/pki/${k.replace(".", "\\.")} 0600 root root`));
    expect(s).toContain('#       token: "<secret: on stdin>"');
    expect(s).toContain("#   kind: ClusterConfiguration");
  });
  it("commands without secret payloads have no stdin", () => {
    for (const n of ["controlplane-prepare-cp1", "controlplane-cni-cp1", "workers-drain-w1"]) expect(command(ha.harness, n).inputs.stdin).toBeUndefined();
  });
});

describe("outputs", () => {
  it("kubeconfig (secret, VIP), endpoint, joinInfo (secret: endpoint, token, caCertHash)", async () => {
    const out = ha.outputs!;
    expect(await pulumi.isSecret(out.kubeconfig as pulumi.Output<string>)).toBe(true);
    const kc = parse(await valueOf(out.kubeconfig as pulumi.Output<string>));
    expect(kc.clusters[0].cluster.server).toBe("https://10.0.0.100:6443");
    expect(kc.clusters[0].name).toBe("prod");
    const ji = out.joinInfo as pulumi.Output<{ endpoint: string; token: string; caCertHash: string }>;
    expect(await pulumi.isSecret(ji)).toBe(true);
    const v = await valueOf(ji);
    expect(Object.keys(v).sort()).toEqual(["caCertHash", "endpoint", "token"]);
    expect(v.endpoint).toBe("10.0.0.100:6443");
    expect(v.token).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}$/);
    expect(v.caCertHash).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(out.apiServerEndpoint).toBe("https://10.0.0.100:6443");
  });
});

describe("scripts", () => {
  it("every create and delete script passes bash -n (and shellcheck, when installed)", () => {
    let checked = 0;
    for (const c of ha.harness.commands()) {
      for (const text of [c.inputs.create, c.inputs.delete].filter(Boolean)) {
        const s = innerScript(text);
        expect(bashSyntax(s), c.name).toBe("");
        const sc = shellcheck(s);
        if (sc !== undefined) expect(sc, c.name).toBe("");
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(40);
  });
  it("files under /etc are written atomically (hakube_put), never with a bare redirect", () => {
    for (const c of ha.harness.commands().filter((x) => !x.name.startsWith("hosts-"))) {
      const s = innerScript(c.inputs.create);
      expect(s, c.name).not.toMatch(/[^2&]>>?\s*"?\/etc\//);
      expect(s, c.name).not.toMatch(/\btee\b/);
      expect(s, c.name).not.toMatch(/\bsed -i\b/);
    }
  });

  describe("kubeadm step (control planes)", () => {
    let first: string;
    let other: string;
    beforeAll(() => {
      first = innerScript(command(ha.harness, "controlplane-kubeadm-cp1").inputs.create);
      other = innerScript(command(ha.harness, "controlplane-kubeadm-cp2").inputs.create);
    });
    it("places the PKI before kubeadm runs, validates the config before use, never uploads certificates", () => {
      for (const s of [first, other]) {
        const place = s.indexOf("hakube_put_stdin 2 /etc/kubernetes/pki/ca.key");
        const validate = s.indexOf("kubeadm config validate --config");
        const install = s.indexOf("install_kubeadm_config 0 ");
        const run = s.indexOf('run_kubeadm "$mode"');
        expect(place).toBeGreaterThan(0);
        expect(validate).toBeGreaterThan(place);
        expect(install).toBeGreaterThan(validate);
        expect(run).toBeGreaterThan(install);
        for (const f of ["ca.crt", "front-proxy-ca.crt", "sa.pub", "etcd/ca.crt", "apiserver-etcd-client.crt"]) expect(s).toContain(`hakube_put /etc/kubernetes/pki/${f} 0644 root root`);
        expect(s).not.toMatch(/--upload-certs|--certificate-key|certificateKey:/);
      }
    });
    it("the first control plane inits (or joins when a control plane already answers at the VIP); the others join", () => {
      expect(first).toMatch(/if curl -fs .*--cacert \/etc\/kubernetes\/pki\/ca\.crt .*https:\/\/10\.0\.0\.100:6443\/api\/v1\/namespaces\/kube-public\/configmaps\/cluster-info/);
      expect(first).toContain("mode=init");
      expect(first).toContain("install_kubeadm_config 6 /etc/kubernetes/hakube/kubeadm-init.yaml");
      expect(other).not.toContain("mode=init");
      expect(other).not.toContain("kubeadm-init.yaml");
      expect(other).toContain('mode="join"');
    });
    it("idempotent: an initialised control plane is detected and skipped; a failed kubeadm run resets the node", () => {
      for (const s of [first, other]) {
        expect(s).toContain("initialised() { [ -f /etc/kubernetes/kubelet.conf ] && [ -f /etc/kubernetes/manifests/kube-apiserver.yaml ]; }");
        expect(s).toMatch(/if initialised; then[\s\S]*exit 0\nfi/);
        expect(s).toMatch(/kubeadm reset -f --skip-phases=remove-etcd-member >> "\$log"/);
      }
    });
    it("checks the bootstrap token is valid on the cluster before joining", () => {
      expect(other).toMatch(/check_bootstrap_token 10\.0\.0\.100:6443 "\$\{token%%\.\*\}"/);
      expect(other).toContain("jws-kubeconfig-$id");
    });
    it("refuses to swap the CAs under a running control plane; restarts the API server only when its etcd client files changed", () => {
      expect(first).toContain("replacing the CA of a running cluster is not supported");
      expect(first).toMatch(/if hakube_changed_any \/etc\/kubernetes\/pki\/etcd\/ca\.crt \/etc\/kubernetes\/pki\/apiserver-etcd-client\.crt \/etc\/kubernetes\/pki\/apiserver-etcd-client\.key; then/);
    });
    it("delete: drain, kubeadm reset, clean up, delete the node (tolerating an unreachable API)", () => {
      const d = innerScript(command(ha.harness, "controlplane-kubeadm-cp2").inputs.delete);
      const drain = d.indexOf("kc drain cp2");
      const reset = d.indexOf("\nreset_node\n");
      const del = d.indexOf("kc delete node cp2");
      expect(drain).toBeGreaterThan(0);
      expect(reset).toBeGreaterThan(drain);
      expect(del).toBeGreaterThan(reset);
      expect(d).toContain("kubeadm reset -f --skip-phases=remove-etcd-member --cleanup-tmp-dir");
      expect(d).toContain("HAKUBE_HOST=cp2 HAKUBE_STEP='kubeadm (delete)'");
    });
  });

  describe("workers", () => {
    it("join: config validated and installed, token checked, kubeadm join; skipped once joined", () => {
      const s = innerScript(command(ha.harness, "workers-join-gpu1").inputs.create);
      expect(s.indexOf("kubeadm config validate")).toBeLessThan(s.indexOf("run_kubeadm join"));
      expect(s).toContain("if [ -f /etc/kubernetes/kubelet.conf ]; then");
      expect(s).toContain('check_bootstrap_token "$endpoint" "${token%%.*}"');
      expect(s).toContain("#       token: \"<secret: on stdin>\"");
      expect(s).toContain("#       apiServerEndpoint: <joinInfo.endpoint>");
    });
    it("delete: the drain step (on the first control plane) drains and deletes the node; the join's delete resets the worker", () => {
      const drain = command(ha.harness, "workers-drain-gpu1");
      const dd = innerScript(drain.inputs.delete);
      expect(dd).toContain("kc drain gpu1 --ignore-daemonsets --delete-emptydir-data");
      expect(dd).toContain("kc delete node gpu1");
      expect(dd).toMatch(/warning: the API server does not answer/);
      const jd = innerScript(command(ha.harness, "workers-join-gpu1").inputs.delete);
      expect(jd).toContain("kubeadm reset -f --skip-phases=remove-etcd-member --cleanup-tmp-dir");
      expect(jd).toContain("HAKUBE_HOST=gpu1 HAKUBE_STEP='join (delete)'");
    });
  });

  describe("token step", () => {
    it("creates or extends the token from stdin; TTL from the config", async () => {
      const s = innerScript(command(ha.harness, "workers-token-w1").inputs.create);
      expect(s).toContain("ttl=86400");
      expect(s).toContain('token=$(printf \'%s\' "${HAKUBE_STDIN[0]}" | base64 -d)');
      expect(s).toContain("--from-file=token-secret=");
      const r = await runProgram(haConfig({ kubernetes: { bootstrapTokenTtl: "0" } }));
      if (r.error) throw r.error;
      expect(innerScript(command(r.harness, "workers-token-w1").inputs.create)).toContain("ttl=0");
    });
  });
});

describe("CNI", () => {
  const cni = async (cniConfig: Record<string, unknown>, kubernetes: Record<string, unknown> = {}) => {
    const r = await runProgram(haConfig({ cni: cniConfig, kubernetes }));
    if (r.error) throw r.error;
    return r.harness.commands().find((c) => c.name === "controlplane-cni-cp1");
  };
  const kustomization = (script: string) => parse(/hakube_put \/etc\/kubernetes\/hakube\/cni\/kustomization\.yaml 0600 root root <<'HAKUBE_FILE'\n([\s\S]*?)\nHAKUBE_FILE/.exec(script)![1]);

  it("calico (default): pinned v3.32.2 manifest, CALICO_IPV4POOL_CIDR = podSubnet by a kustomize patch, server-side apply", async () => {
    const c = await cni({}, { podSubnet: "10.32.0.0/16" });
    const s = innerScript(c!.inputs.create);
    expect(s).toContain("https://raw.githubusercontent.com/projectcalico/calico/v3.32.2/manifests/calico.yaml");
    const k = kustomization(s);
    expect(k.resources).toEqual(["manifest.yaml"]);
    expect(k.patches[0].target).toEqual({ kind: "DaemonSet", name: "calico-node", namespace: "kube-system" });
    expect(parse(k.patches[0].patch).spec.template.spec.containers).toEqual([{ name: "calico-node", env: [{ name: "CALICO_IPV4POOL_CIDR", value: "10.32.0.0/16" }] }]);
    expect(s).toContain("kubectl kustomize /etc/kubernetes/hakube/cni");
    expect(s).toContain("kc apply --server-side --force-conflicts --field-manager=hakube");
    expect(s).not.toMatch(/\bsed\b/);
  });
  it("flannel: pinned v0.28.10 release asset, net-conf.json Network = podSubnet", async () => {
    const s = innerScript((await cni({ plugin: "flannel" }))!.inputs.create);
    expect(s).toContain("https://github.com/flannel-io/flannel/releases/download/v0.28.10/kube-flannel.yml");
    const p = parse(kustomization(s).patches[0].patch);
    expect(p.metadata).toEqual({ name: "kube-flannel-cfg", namespace: "kube-flannel" });
    expect(JSON.parse(p.data["net-conf.json"])).toEqual({ Network: "10.244.0.0/16", EnableNFTables: false, Backend: { Type: "vxlan" } });
  });
  it("cilium: the given manifest, applied as is", async () => {
    const s = innerScript((await cni({ plugin: "cilium", manifestUrl: "https://example.com/cilium.yaml" }))!.inputs.create);
    expect(s).toContain("https://example.com/cilium.yaml");
    expect(kustomization(s).patches).toBeUndefined();
  });
  it("calico with manifestUrl: that manifest, still patched", async () => {
    const s = innerScript((await cni({ plugin: "calico", manifestUrl: "https://mirror.example.com/calico.yaml" }))!.inputs.create);
    expect(s).toContain("https://mirror.example.com/calico.yaml");
    expect(kustomization(s).patches).toHaveLength(1);
  });
  it("images and patches: kustomize's own fields, the user's patches after hakube's pod-subnet patch", async () => {
    const images = [{ name: "ghcr.io/flannel-io/flannel", newName: "mirror.example.com:5000/flannel-io/flannel" }, { name: "ghcr.io/flannel-io/flannel-cni-plugin", newName: "mirror.example.com:5000/flannel-cni-plugin", newTag: "v0.9.1" }];
    const patch = { apiVersion: "apps/v1", kind: "DaemonSet", metadata: { name: "kube-flannel-ds", namespace: "kube-flannel" }, spec: { template: { spec: { priorityClassName: "system-cluster-critical" } } } };
    const s = innerScript((await cni({ plugin: "flannel", images, patches: [{ target: { kind: "DaemonSet", name: "kube-flannel-ds", namespace: "kube-flannel" }, patch }] }))!.inputs.create);
    const k = kustomization(s);
    expect(k.images).toEqual(images);
    expect(k.patches.map((p: { target: { name: string } }) => p.target.name)).toEqual(["kube-flannel-cfg", "kube-flannel-ds"]);
    expect(parse(k.patches[1].patch)).toEqual(patch);
  });
  it("none: no CNI step", async () => {
    expect(await cni({ plugin: "none" })).toBeUndefined();
  });
});

describe("determinism", () => {
  it("the same config and state give byte-identical command inputs", async () => {
    const again = await runProgram(haConfig(), { state: ha.harness.state });
    if (again.error) throw again.error;
    const texts = (r: RunResult) => r.harness.commands().map((c) => [c.name, c.inputs.create, c.inputs.delete ?? "", c.inputs.stdin ?? ""]).sort();
    expect(texts(again)).toEqual(texts(ha));
  });
  it("adding a worker creates only that worker's steps; existing steps keep their inputs", async () => {
    const base = haConfig();
    const more = haConfig({ hosts: [...(base.hosts as object[]), { name: "w3", address: "10.0.0.43", roles: ["worker"] }] });
    const r = await runProgram(more, { state: ha.harness.state });
    if (r.error) throw r.error;
    const before = new Map(ha.harness.commands().map((c) => [c.name, c.inputs]));
    const changed = r.harness.commands().filter((c) => JSON.stringify(before.get(c.name)) !== JSON.stringify(c.inputs)).map((c) => c.name);
    expect(changed.sort()).toEqual(["hosts-preflight-w3", "workers-drain-w3", "workers-join-w3", "workers-prepare-w3", "workers-token-w3"]);
  });
});

it("the program registers no command before the PKI it needs (tls resources first)", () => {
  const firstCommand = ha.harness.registrations.findIndex((r) => r.type === TOKENS.command);
  expect(ha.harness.registrations.slice(0, firstCommand).some((r) => r.type === TOKENS.selfSignedCert)).toBe(true);
});
