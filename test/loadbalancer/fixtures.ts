/** Shared fixtures for the load-balancer tests: render variants, tool detection, a test CA. */
import { spawnSync } from "node:child_process";
import { certRequest, locallySignedCert, privateKey, selfSignedCert } from "../harness/crypto";
import type { Engine, LbInput, VrrpMode } from "../../components/loadbalancer/render";

export function hasCommand(bin: string): boolean {
  return spawnSync("bash", ["-c", `command -v ${bin}`], { stdio: "ignore" }).status === 0;
}
export const isRoot = process.getuid?.() === 0;
/** keepalived -t needs the VRRP interface to exist: we give it one in a throwaway network namespace. */
export function canUnshareNet(): boolean {
  if (!isRoot || !hasCommand("unshare") || !hasCommand("ip")) return false;
  return spawnSync("unshare", ["-n", "ip", "link", "add", "hkt0", "type", "veth", "peer", "name", "hkt1"], { stdio: "ignore" }).status === 0;
}
/** Why a real-binary test is skipped (undefined: it runs). */
export function missing(bins: string[], needNetns = false): string | undefined {
  const absent = bins.filter((b) => !hasCommand(b));
  if (absent.length) return `${absent.join(", ")} not installed (apt-get install haproxy nginx libnginx-mod-stream keepalived; test/all.sh does)`;
  if (needNetns && !canUnshareNet()) return "needs root and `unshare -n` with veth support (keepalived -t needs a real VRRP interface)";
  return undefined;
}

export interface Variant {
  id: string;
  engine: Engine;
  vrrp: VrrpMode;
  ingress: boolean;
  lbCount: 2 | 3;
  colocated: boolean;
}

/** haproxy/nginx × unicast/multicast × ingress on/off × 2/3 load balancers × co-located (8443) or not. */
export function allVariants(): Variant[] {
  const out: Variant[] = [];
  for (const engine of ["haproxy", "nginx"] as const)
    for (const vrrp of ["unicast", "multicast"] as const)
      for (const ingress of [false, true])
        for (const lbCount of [2, 3] as const)
          for (const colocated of [false, true])
            out.push({ engine, vrrp, ingress, lbCount, colocated, id: `${engine}-${vrrp}-${ingress ? "ingress" : "noingress"}-${lbCount}lb-${colocated ? "colocated8443" : "dedicated"}` });
  return out;
}

/** The render input of a variant (the lab's addresses; paths under `dir` where a test needs them writable). */
export function variantInput(v: Variant, dir?: string): LbInput {
  const lbHosts = Array.from({ length: v.lbCount }, (_, i) =>
    v.colocated ? { name: `cp${i + 1}`, internalAddress: `10.123.0.${31 + i}` } : { name: `lb${i + 1}`, internalAddress: `10.123.0.${11 + i}` },
  );
  return {
    clusterName: "dev",
    engine: v.engine,
    vip: "10.123.0.100",
    vipPrefix: 24,
    interface: "host0",
    virtualRouterId: 51,
    port: v.colocated ? 8443 : 6443,
    ...(v.ingress ? { ingress: { http: { port: 80, nodePort: 30080 }, https: { port: 443, nodePort: 30443 } } } : {}),
    lbHosts,
    apiServers: [1, 2, 3].map((i) => ({ name: `cp${i}`, address: `10.123.0.${30 + i}`, port: 6443 })),
    workers: v.ingress ? [1, 2].map((i) => ({ name: `worker${i}`, address: `10.123.0.${40 + i}` })) : [],
    vrrp: v.vrrp,
    ...(dir
      ? {
          paths: {
            caFile: `${dir}/kubernetes-ca.crt`,
            statsSocket: `${dir}/admin.sock`,
            nginxPid: `${dir}/nginx.pid`,
            nginxErrorLog: `${dir}/nginx-error.log`,
            nginxAccessLog: `${dir}/nginx-access.log`,
            checkScript: `${dir}/check-${v.engine}-${v.ingress ? "i" : "n"}-${v.colocated ? "c" : "d"}.sh`,
            notifyScript: `${dir}/notify.sh`,
            holderFile: `${dir}/holder`,
          },
          scriptUser: "nobody", // keepalived_script is created by the packages step on the hosts
        }
      : {}),
  };
}

export interface TestCa {
  certPem: string;
  keyPem: string;
}

/** A self-signed CA (ECDSA P-256), as the PKI makes it. */
export async function makeCa(commonName: string): Promise<TestCa> {
  const key = await privateKey({ algorithm: "ECDSA", ecdsaCurve: "P256" });
  const cert = await selfSignedCert({
    privateKeyPem: key.privateKeyPem,
    subject: { commonName },
    isCaCertificate: true,
    validityPeriodHours: 24,
    allowedUses: ["cert_signing", "digital_signature"],
    setSubjectKeyId: true,
  });
  return { certPem: cert.certPem, keyPem: key.privateKeyPem };
}

/** A server certificate signed by `ca` with the given DNS/IP SANs. */
export async function serverCert(ca: TestCa, commonName: string, dnsNames: string[], ipAddresses: string[] = []): Promise<TestCa> {
  const key = await privateKey({ algorithm: "ECDSA", ecdsaCurve: "P256" });
  const csr = await certRequest({ privateKeyPem: key.privateKeyPem, subject: { commonName }, dnsNames, ipAddresses });
  const cert = await locallySignedCert({
    certRequestPem: csr.certRequestPem,
    caCertPem: ca.certPem,
    caPrivateKeyPem: ca.keyPem,
    validityPeriodHours: 24,
    allowedUses: ["digital_signature", "server_auth"],
    setSubjectKeyId: true,
  });
  return { certPem: cert.certPem, keyPem: key.privateKeyPem };
}

/** Run a bash script; never throws. */
export function bash(script: string, opts: { netns?: boolean; timeoutMs?: number } = {}): { status: number | null; stdout: string; stderr: string } {
  const args = opts.netns ? ["unshare", "-n", "bash", "-c", script] : ["bash", "-c", script];
  const r = spawnSync(args[0], args.slice(1), { encoding: "utf8", timeout: opts.timeoutMs ?? 60_000 });
  return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

export function versionOf(bin: string, args: string[]): string {
  const r = spawnSync(bin, args, { encoding: "utf8" });
  return `${r.stdout ?? ""}${r.stderr ?? ""}`.split("\n")[0];
}

/** The dev pair's input (lb1 only unless `lbHosts` is given), three API servers and one worker. */
export function devInput(over: Partial<LbInput> = {}): LbInput {
  return {
    clusterName: "dev",
    engine: "haproxy",
    vip: "10.123.0.100",
    vipPrefix: 24,
    interface: "host0",
    virtualRouterId: 51,
    port: 6443,
    lbHosts: [{ name: "lb1", internalAddress: "10.123.0.11" }],
    apiServers: [1, 2, 3].map((i) => ({ name: `cp${i}`, address: `10.123.0.${30 + i}`, port: 6443 })),
    workers: [{ name: "worker1", address: "10.123.0.41" }],
    ...over,
  };
}
