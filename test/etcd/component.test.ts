/**
 * EtcdCluster as the program builds it (index.ts under the harness: real keys and certificates,
 * commands recorded): certificates, names, the rendered member config, secrets, ordering,
 * determinism, outputs.
 */
import { X509Certificate } from "node:crypto";
import { describe, expect, test } from "vitest";
import * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";
import type { Registration, ResourceState } from "../harness/mocks";
import { readStackFile, runProgram, TEST_SSH_KEY, type StackConfig } from "../harness/program";

const DEV: StackConfig = { ...readStackFile("Pulumi.dev.yaml"), "hakube:sshPrivateKey": TEST_SSH_KEY };
const ETCD = ["etcd1", "etcd2", "etcd3"];
const ADDR: Record<string, string> = { etcd1: "10.123.0.21", etcd2: "10.123.0.22", etcd3: "10.123.0.23" };

async function run(config: StackConfig = DEV, opts: Parameters<typeof runProgram>[1] = {}) {
  const r = await runProgram(config, opts);
  if (r.error) throw r.error;
  expect(r.harness.failures()).toEqual([]);
  const byName = (n: string): Registration => {
    const x = r.harness.registrations.find((g) => g.name === n);
    if (!x) throw new Error(`no resource ${n}`);
    return x;
  };
  return { ...r, byName, commands: r.harness.commands() };
}

/** SANs as node prints them: "DNS:etcd1, IP Address:10.0.0.1". */
function sans(pem: string): string[] {
  return (new X509Certificate(pem).subjectAltName ?? "").split(", ").filter(Boolean).sort();
}
/** The extended key usages (OIDs) and the key usage flags (@peculiar/x509). */
async function usages(pem: string): Promise<{ eku: string[]; ku: number }> {
  await import("reflect-metadata");
  const x509 = await import("@peculiar/x509");
  const c = new x509.X509Certificate(pem);
  const eku = c.getExtension(x509.ExtendedKeyUsageExtension)?.usages.map(String) ?? [];
  const ku = c.getExtension(x509.KeyUsagesExtension)?.usages ?? 0;
  return { eku: [...eku].sort(), ku };
}
const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";

/** The heredoc'd file `name` staged by a member script. */
function stagedFile(script: string, name: string): string {
  const m = new RegExp(`cat > "\\$stage/${name.replace(/\./g, "\\.")}" <<'(HAKUBE_FILE[_0-9]*)'\\n([\\s\\S]*?)\\n\\1\\n`).exec(script);
  if (!m) throw new Error(`${name} is not staged`);
  return m[2] + "\n";
}

describe("EtcdCluster in the dev stack", async () => {
  const r = await run();
  const ca = new X509Certificate(r.byName("pki-etcd-ca-cert").outputs.certPem);

  test("resources are named by host; one install and member step per member, one gate on the first member", () => {
    const names = r.commands.map((c) => c.name).filter((n) => n.startsWith("etcd-")).sort();
    expect(names).toEqual([...ETCD.map((h) => `etcd-install-${h}`), ...ETCD.map((h) => `etcd-member-${h}`), "etcd-health-etcd1"].sort());
    for (const h of ETCD)
      for (const kind of ["server", "peer"])
        for (const part of ["key", "csr", "cert"]) expect(() => r.byName(`etcd-${kind}-${h}-${part}`)).not.toThrow();
    expect(r.harness.ofType("hakube:etcd:EtcdCluster").map((x) => x.name)).toEqual(["etcd"]);
    // nothing of etcd lands on the other hosts
    expect(r.commands.filter((c) => /^etcd-/.test(c.name) && !/etcd\d$/.test(c.name))).toEqual([]);
  });

  test("server certificates: host name, internalAddress, localhost, 127.0.0.1; serverAuth + clientAuth; signed by the etcd CA", async () => {
    for (const h of ETCD) {
      const pem = r.byName(`etcd-server-${h}-cert`).outputs.certPem;
      const c = new X509Certificate(pem);
      expect(sans(pem)).toEqual([`DNS:${h}`, "DNS:localhost", `IP Address:${ADDR[h]}`, "IP Address:127.0.0.1"].sort());
      expect(c.subject).toBe(`CN=${h}`);
      expect(c.verify(ca.publicKey)).toBe(true);
      expect(c.checkIssued(ca)).toBe(true);
      expect(c.ca).toBe(false);
      expect((await usages(pem)).eku).toEqual([SERVER_AUTH, CLIENT_AUTH]);
    }
  });

  test("peer certificates are distinct: host name and internalAddress only; serverAuth + clientAuth", async () => {
    for (const h of ETCD) {
      const pem = r.byName(`etcd-peer-${h}-cert`).outputs.certPem;
      expect(pem).not.toBe(r.byName(`etcd-server-${h}-cert`).outputs.certPem);
      expect(r.byName(`etcd-peer-${h}-key`).outputs.privateKeyPem).not.toBe(r.byName(`etcd-server-${h}-key`).outputs.privateKeyPem);
      expect(sans(pem)).toEqual([`DNS:${h}`, `IP Address:${ADDR[h]}`].sort());
      expect(new X509Certificate(pem).verify(ca.publicKey)).toBe(true);
      expect((await usages(pem)).eku).toEqual([SERVER_AUTH, CLIENT_AUTH]);
    }
  });

  test("client certificates: healthcheck-client and apiserver-etcd-client, clientAuth only, no SANs", async () => {
    for (const [n, cn] of [
      ["etcd-healthcheck-client", "kube-etcd-healthcheck-client"],
      ["etcd-apiserver-etcd-client", "kube-apiserver-etcd-client"],
    ]) {
      const pem = r.byName(`${n}-cert`).outputs.certPem;
      const c = new X509Certificate(pem);
      expect(c.subject).toBe(`CN=${cn}`);
      expect(c.subjectAltName).toBeUndefined();
      expect(c.verify(ca.publicKey)).toBe(true);
      expect((await usages(pem)).eku).toEqual([CLIENT_AUTH]);
    }
  });

  test("every member's config lists all members and its own URLs; TLS on both sides with client certificates", () => {
    for (const h of ETCD) {
      const script = r.byName(`etcd-member-${h}`).inputs.create as string;
      const cfg = parse(stagedFile(script, "etcd.conf.yml"));
      expect(cfg.name).toBe(h);
      expect(cfg["initial-cluster"]).toBe(ETCD.map((m) => `${m}=https://${ADDR[m]}:2380`).join(","));
      expect(cfg["initial-cluster-state"]).toBe("new");
      expect(cfg["initial-cluster-token"]).toBe("hakube-dev-etcd");
      expect(cfg["listen-client-urls"]).toBe(`https://${ADDR[h]}:2379,https://127.0.0.1:2379`);
      expect(cfg["advertise-client-urls"]).toBe(`https://${ADDR[h]}:2379`);
      expect(cfg["listen-peer-urls"]).toBe(`https://${ADDR[h]}:2380`);
      expect(cfg["data-dir"]).toBe("/var/lib/etcd");
      for (const side of ["client-transport-security", "peer-transport-security"]) {
        expect(cfg[side]["client-cert-auth"]).toBe(true);
        expect(cfg[side]["trusted-ca-file"]).toBe("/etc/etcd/pki/ca.crt");
        expect(cfg[side]["auto-tls"]).toBe(false);
      }
      // the member gets its own certificates and the etcd CA
      expect(stagedFile(script, "server.crt")).toBe(r.byName(`etcd-server-${h}-cert`).outputs.certPem);
      expect(stagedFile(script, "peer.crt")).toBe(r.byName(`etcd-peer-${h}-cert`).outputs.certPem);
      expect(stagedFile(script, "ca.crt")).toBe(r.byName("pki-etcd-ca-cert").outputs.certPem);
      const unit = stagedFile(script, "etcd.service");
      expect(unit).toContain("ExecStart=/usr/local/bin/etcd --config-file=/etc/etcd/etcd.conf.yml"); // dev: source download (the lab site's mirror)
    }
  });

  test("no private key in any command text; the member keys travel on (secret) stdin", () => {
    const keys = r.harness.ofType("tls:index/privateKey:PrivateKey").map((k) => k.outputs.privateKeyPem as string);
    expect(keys.length).toBeGreaterThan(10);
    for (const c of r.commands) {
      for (const field of ["create", "delete", "update"]) {
        const text = (c.inputs[field] ?? "") as string;
        expect(text, `${c.name}.${field}`).not.toMatch(/PRIVATE KEY/);
        for (const k of keys) expect(text.includes(k.split("\n")[1])).toBe(false);
      }
    }
    for (const h of ETCD) {
      const m = r.byName(`etcd-member-${h}`);
      expect(pulumi.runtime.isRpcSecret(m.rawInputs.stdin)).toBe(true);
      const items = (m.inputs.stdin as string).trim().split("\n").map((l) => Buffer.from(l, "base64").toString());
      expect(items).toEqual([
        r.byName(`etcd-server-${h}-key`).outputs.privateKeyPem,
        r.byName(`etcd-peer-${h}-key`).outputs.privateKeyPem,
        r.byName("etcd-healthcheck-client-key").outputs.privateKeyPem,
      ]);
      expect(m.inputs.create).toContain(`hakube_put ${"/etc/etcd/pki/server.key"} 0600 etcd etcd`);
    }
  });

  test("the member step's delete stops and disables etcd and keeps the data", () => {
    const del = r.byName("etcd-member-etcd2").inputs.delete as string;
    expect(del).toContain("systemctl stop etcd.service");
    expect(del).toContain("systemctl disable --quiet etcd.service");
    expect(del).toContain("data kept in /var/lib/etcd");
    expect(del).not.toMatch(/rm -rf|\/var\/lib\/etcd\/member/);
    expect(del).toContain("owner=etcd-member-etcd2");
  });

  test("outputs: etcdEndpoints in host order", () => {
    expect(r.outputs!.etcdEndpoints).toEqual(ETCD.map((h) => `https://${ADDR[h]}:2379`));
  });
});

describe("ordering, determinism and change detection", () => {
  test("member steps run one host at a time in host order; the gate after all of them", async () => {
    const delay = async () => {
      await new Promise((res) => setTimeout(res, 25));
      return { stdout: "", stderr: "" };
    };
    const r = await run(DEV, { executor: delay });
    const at = (n: string) => r.byName(n);
    for (let i = 1; i < ETCD.length; i++) {
      expect(at(`etcd-member-${ETCD[i]}`).startMs).toBeGreaterThanOrEqual(at(`etcd-member-${ETCD[i - 1]}`).endMs!);
      expect(at(`etcd-member-${ETCD[i]}`).startMs).toBeGreaterThanOrEqual(at(`etcd-install-${ETCD[i]}`).endMs!);
    }
    for (const h of ETCD) expect(at("etcd-health-etcd1").startMs).toBeGreaterThanOrEqual(at(`etcd-member-${h}`).endMs!);
    // installs are not chained: the last one starts before the first member step ends
    expect(at("etcd-install-etcd3").startMs).toBeLessThan(at("etcd-member-etcd1").endMs!);
  });

  test("same config and state → byte-identical commands; a reordered host list changes no member script", async () => {
    const state: ResourceState = new Map();
    const a = await run(DEV, { state });
    const b = await run(DEV, { state });
    const pick = (x: typeof a) => Object.fromEntries(x.commands.map((c) => [c.name, [c.inputs.create, c.inputs.delete, c.inputs.stdin]]));
    expect(pick(b)).toEqual(pick(a));

    const hosts = (DEV["hakube:hosts"] as { name: string }[]).slice();
    const reordered = [...hosts.filter((h) => !h.name.startsWith("etcd")), ...hosts.filter((h) => h.name.startsWith("etcd")).reverse()];
    const c = await run({ ...DEV, "hakube:hosts": reordered }, { state });
    for (const h of ETCD) expect(c.byName(`etcd-member-${h}`).inputs.create).toBe(a.byName(`etcd-member-${h}`).inputs.create);
    // the gate now runs on the first etcd host in the new order
    expect(c.commands.filter((x) => x.name.startsWith("etcd-health-")).map((x) => x.name)).toEqual(["etcd-health-etcd3"]);
    expect(c.outputs!.etcdEndpoints).toEqual(["etcd3", "etcd2", "etcd1"].map((h) => `https://${ADDR[h]}:2379`));
  });

  test("a renewed certificate changes only that member's script (and the gate's)", async () => {
    const state: ResourceState = new Map();
    const a = await run(DEV, { state });
    for (const k of [...state.keys()]) if (k.includes("::etcd-server-etcd2-cert::")) state.delete(k);
    const b = await run(DEV, { state });
    expect(b.byName("etcd-server-etcd2-cert").outputs.certPem).not.toBe(a.byName("etcd-server-etcd2-cert").outputs.certPem);
    expect(b.byName("etcd-member-etcd2").inputs.create).not.toBe(a.byName("etcd-member-etcd2").inputs.create);
    for (const h of ["etcd1", "etcd3"]) {
      expect(b.byName(`etcd-member-${h}`).inputs.create).toBe(a.byName(`etcd-member-${h}`).inputs.create);
      expect(b.byName(`etcd-install-${h}`).inputs.create).toBe(a.byName(`etcd-install-${h}`).inputs.create);
    }
    expect(b.byName("etcd-health-etcd1").inputs.create).not.toBe(a.byName("etcd-health-etcd1").inputs.create);
  });
});

describe("variants", () => {
  test("stacked etcd on the control-plane hosts, RSA keys, download source with checksums", async () => {
    const hosts = [
      { name: "lb1", address: "10.123.0.11", roles: ["loadbalancer"] },
      { name: "lb2", address: "10.123.0.12", roles: ["loadbalancer"] },
      { name: "cp1", address: "10.123.0.31", roles: ["controlplane", "etcd"] },
      { name: "cp2", address: "10.123.0.32", roles: ["etcd", "controlplane"] },
      { name: "cp3", address: "10.123.0.33", roles: ["controlplane", "etcd"] },
      { name: "worker1", address: "10.123.0.41", roles: ["worker"] },
    ];
    const r = await run({
      ...DEV,
      "hakube:hosts": hosts,
      "hakube:etcd": { source: "download", version: "3.6.6", sha256: { amd64: "a".repeat(64), arm64: "b".repeat(64) } },
      "hakube:kubernetes": { podSubnet: "10.244.0.0/16", serviceSubnet: "10.96.0.0/12", encryptionAlgorithm: "RSA-2048" },
    });
    expect(r.outputs!.etcdEndpoints).toEqual(["https://10.123.0.31:2379", "https://10.123.0.32:2379", "https://10.123.0.33:2379"]);
    expect(r.commands.some((c) => c.name === "etcd-health-cp1")).toBe(true);
    const pem = r.byName("etcd-server-cp2-cert").outputs.certPem;
    expect(new X509Certificate(pem).publicKey.asymmetricKeyType).toBe("rsa");
    const x509 = await import("@peculiar/x509");
    expect((await usages(pem)).ku & x509.KeyUsageFlags.keyEncipherment).toBeTruthy(); // RSA keys encipher
    const ec = await run(); // ECDSA (default): digitalSignature only
    expect((await usages(ec.byName("etcd-server-etcd1-cert").outputs.certPem)).ku).toBe(x509.KeyUsageFlags.digitalSignature);
    const install = r.byName("etcd-install-cp1").inputs.create as string;
    expect(install).toContain("https://github.com/etcd-io/etcd/releases/download/v{version}/etcd-v{version}-linux-{arch}.tar.gz");
    expect(install).toContain(`amd64) sum=${"a".repeat(64)} ;;`);
    const unit = stagedFile(r.byName("etcd-member-cp1").inputs.create, "etcd.service");
    expect(unit).toContain("ExecStart=/usr/local/bin/etcd --config-file=/etc/etcd/etcd.conf.yml");
    expect(unit).not.toContain("ETCD_UNSUPPORTED_ARCH"); // 3.6 supports arm64
  });

  test("a single member: no peers to ask, initial-cluster of one", async () => {
    const hosts = (DEV["hakube:hosts"] as { name: string; roles: string[] }[]).filter((h) => h.name !== "etcd2" && h.name !== "etcd3");
    const r = await run({ ...DEV, "hakube:hosts": hosts });
    expect(r.warnings.join("\n")).toMatch(/1 etcd member/);
    const script = r.byName("etcd-member-etcd1").inputs.create as string;
    expect(script).toContain("others=''");
    expect(parse(stagedFile(script, "etcd.conf.yml"))["initial-cluster"]).toBe("etcd1=https://10.123.0.21:2380");
  });

  describe("etcd.deployment: kubeadm", () => {
    const KUBEADM: StackConfig = { ...DEV, "hakube:etcd": { ...(DEV["hakube:etcd"] as object), deployment: "kubeadm" } };

    test("each member host is prepared like a node (etcd-prepare-<host>) before its member step; the member runs kubeadm's phase into the stage", async () => {
      const r = await run(KUBEADM);
      const names = r.commands.map((c) => c.name);
      for (const h of ETCD) {
        expect(names).toContain(`etcd-prepare-${h}`);
        const member = r.byName(`etcd-member-${h}`);
        expect(member.dependencies).toEqual(expect.arrayContaining([`etcd-prepare-${h}`, `etcd-install-${h}`]));
        const script = member.inputs.create as string;
        expect(script).toContain('kubeadm --rootfs "$stage/root" init phase etcd local --config /kubeadm.yaml');
        const cfg = stagedFile(script, "kubeadm.yaml");
        const docs = cfg.split(/^---$/m).map((d) => parse(d));
        const cluster = docs.find((d) => d.kind === "ClusterConfiguration");
        expect(cluster.etcd.local.imageTag).toBe("3.6.16-0");
        expect(cluster.etcd.local.imageRepository).toBe("10.123.0.1:5000/k8s");
        const args = Object.fromEntries((cluster.etcd.local.extraArgs as { name: string; value: string }[]).map((a) => [a.name, a.value]));
        expect(args["initial-cluster"]).toBe(ETCD.map((n) => `${n}=https://${ADDR[n]}:2380`).join(","));
        expect(args.name).toBe(h);
        // the stamp in the manifest's env is the one in the command text: a certificate change restarts the pod
        const stamp = /^stamp='?([0-9a-f]{64})'?$/m.exec(script)![1];
        expect(cluster.etcd.local.extraEnvs).toEqual([{ name: "HAKUBE_ETCD_STAMP", value: stamp }]);
        expect(docs.find((d) => d.kind === "InitConfiguration").localAPIEndpoint.advertiseAddress).toBe(ADDR[h]);
        expect(stagedFile(script, "kubelet.yaml")).toMatch(/^staticPodPath: \/etc\/kubernetes\/manifests$/m);
        expect(member.inputs.delete as string).toContain("removed etcd's static pod");
      }
      // the health gate checks with kubeadm's certificate paths
      expect(r.byName("etcd-health-etcd1").inputs.create as string).toContain("/etc/kubernetes/pki/etcd/healthcheck-client.crt");
      // the preflight reserves the kubelet's and etcd's local ports
      expect(r.byName("hosts-preflight-etcd1").inputs.create as string).toMatch(/check_port 2381 /);
    });

    test("the systemd deployment (the default) prepares no etcd host and runs no kubelet there", async () => {
      const r = await run(DEV);
      expect(r.commands.filter((c) => /^etcd-prepare-/.test(c.name))).toEqual([]);
      expect(r.byName("etcd-member-etcd1").inputs.create as string).not.toContain("kubeadm --rootfs");
      expect(r.byName("hosts-preflight-etcd1").inputs.create as string).not.toMatch(/check_port 2381 /);
    });

    test("switching deployment changes every member script (the hosts refuse it), and nothing of the control planes but the etcd client files they already had", async () => {
      const state: ResourceState = new Map();
      const a = await run(DEV, { state });
      const b = await run(KUBEADM, { state });
      for (const h of ETCD) expect(b.byName(`etcd-member-${h}`).inputs.create).not.toBe(a.byName(`etcd-member-${h}`).inputs.create);
      for (const n of ["controlplane-kubeadm-cp1", "workers-join-worker1", "lb-proxy-lb1"]) expect(b.byName(n).inputs.create, n).toBe(a.byName(n).inputs.create);
    });
  });
});
