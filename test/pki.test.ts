/**
 * ClusterPki: CA flags, key usages, validity, the algorithm switch, the admin certificate, the
 * bootstrap token, the kubeconfig, and the discovery hash cross-checked with openssl.
 */
import { execFileSync } from "node:child_process";
import { X509Certificate, createPublicKey } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";
import { beforeAll, describe, expect, it } from "vitest";
import { discoveryHash } from "../components/pki/render";
import { TOKENS } from "./harness/mocks";
import { readStackFile, runProgram, TEST_SSH_KEY, valueOf, type RunResult } from "./harness/program";

const HOUR = 3600_000;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hakube-pki-"));
const write = (name: string, text: string) => {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, text);
  return f;
};
const openssl = (...args: string[]) => execFileSync("openssl", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

function certOf(r: RunResult, name: string): X509Certificate {
  const reg = r.harness.registrations.find((x) => x.name === name);
  expect(reg, name).toBeDefined();
  return new X509Certificate(reg!.outputs.certPem);
}
/** Key usage / EKU / basic constraints as openssl prints them. */
function extensions(pem: string): string {
  return openssl("x509", "-noout", "-ext", "keyUsage,extendedKeyUsage,basicConstraints", "-in", write(`c-${Math.random()}.pem`, pem));
}

let ecdsa: RunResult;
let rsa: RunResult;
beforeAll(async () => {
  const base = { ...readStackFile("Pulumi.dev.yaml"), sshPrivateKey: TEST_SSH_KEY };
  ecdsa = await runProgram(base);
  if (ecdsa.error) throw ecdsa.error;
  rsa = await runProgram({ ...base, "hakube:kubernetes": { encryptionAlgorithm: "RSA-2048" } });
  if (rsa.error) throw rsa.error;
});

describe("certificate authorities", () => {
  for (const [id, cn] of [["kubernetes-ca", "kubernetes"], ["front-proxy-ca", "front-proxy-ca"], ["etcd-ca", "etcd-ca"]]) {
    it(`${id}: self-signed CA, 10 years, cert signing only`, () => {
      const c = certOf(ecdsa, `pki-${id}-cert`);
      expect(c.ca).toBe(true);
      expect(c.subject).toContain(`CN=${cn}`);
      expect(c.issuer).toBe(c.subject);
      expect(c.verify(c.publicKey)).toBe(true);
      const years = (Date.parse(c.validTo) - Date.parse(c.validFrom)) / (365 * 24 * HOUR);
      expect(years).toBeCloseTo(10, 1);
      const ext = extensions(c.toString());
      expect(ext).toMatch(/critical\s+CA:TRUE/);
      expect(ext).toMatch(/Digital Signature, Certificate Sign, CRL Sign/);
      expect(ext).not.toMatch(/Extended Key Usage/);
      // not backdated: starts within the last minute
      expect(Date.now() - Date.parse(c.validFrom)).toBeLessThan(60_000);
    });
  }

  it("ECDSA P-256 by default, RSA-2048 when selected", () => {
    const e = certOf(ecdsa, "pki-kubernetes-ca-cert").publicKey;
    expect(e.asymmetricKeyType).toBe("ec");
    expect(e.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    const r = certOf(rsa, "pki-kubernetes-ca-cert").publicKey;
    expect(r.asymmetricKeyType).toBe("rsa");
    expect(r.asymmetricKeyDetails?.modulusLength).toBe(2048);
    for (const k of rsa.harness.ofType(TOKENS.privateKey)) expect(k.inputs).toMatchObject({ algorithm: "RSA", rsaBits: 2048 });
    for (const k of ecdsa.harness.ofType(TOKENS.privateKey)) expect(k.inputs).toMatchObject({ algorithm: "ECDSA", ecdsaCurve: "P256" });
  });

  it("three distinct CAs", () => {
    const keys = ["kubernetes-ca", "front-proxy-ca", "etcd-ca"].map((id) => certOf(ecdsa, `pki-${id}-cert`).publicKey.export({ type: "spki", format: "der" }).toString("hex"));
    expect(new Set(keys).size).toBe(3);
  });
});

describe("admin client certificate", () => {
  for (const alg of ["ecdsa", "rsa"] as const) {
    it(`${alg}: kubeadm:cluster-admins, client auth, 1 year, signed by the Kubernetes CA (openssl -x509_strict)`, () => {
      const r = alg === "ecdsa" ? ecdsa : rsa;
      const ca = certOf(r, "pki-kubernetes-ca-cert");
      const admin = certOf(r, "pki-admin-cert");
      expect(admin.ca).toBe(false);
      expect(admin.subject).toContain("O=kubeadm:cluster-admins");
      expect(admin.subject).toContain("CN=kubernetes-admin");
      expect(admin.verify(ca.publicKey)).toBe(true);
      const days = (Date.parse(admin.validTo) - Date.parse(admin.validFrom)) / (24 * HOUR);
      expect(days).toBeCloseTo(365, 0);
      const ext = extensions(admin.toString());
      expect(ext).toMatch(/TLS Web Client Authentication/);
      expect(ext).not.toMatch(/TLS Web Server Authentication/);
      expect(ext).toMatch(alg === "rsa" ? /Digital Signature, Key Encipherment/ : /Digital Signature\s*\n/);
      const out = openssl("verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", write(`ca-${alg}.pem`, ca.toString()), write(`admin-${alg}.pem`, admin.toString()));
      expect(out).toMatch(/: OK/);
    });
  }
});

describe("service-account key pair and bootstrap token", () => {
  it("service-account public key matches its private key", () => {
    const reg = ecdsa.harness.registrations.find((x) => x.name === "pki-service-account-key")!;
    const fromPriv = createPublicKey(reg.outputs.privateKeyPem).export({ type: "spki", format: "pem" });
    expect(fromPriv).toBe(reg.outputs.publicKeyPem);
  });

  it("token is [a-z0-9]{6}.[a-z0-9]{16}, secret; its id is public", async () => {
    const join = ecdsa.outputs!.joinInfo as pulumi.Output<{ token: string; endpoint: string; caCertHash: string }>;
    expect(await pulumi.isSecret(join)).toBe(true);
    const v = await valueOf(join);
    expect(v.token).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}$/);
    expect(v.endpoint).toBe("10.123.0.100:6443");
    const [id, secret] = ecdsa.harness.ofType(TOKENS.randomString);
    expect(id.inputs).toMatchObject({ length: 6, upper: false, special: false, lower: true, numeric: true });
    expect(secret.inputs).toMatchObject({ length: 16, upper: false, special: false });
    expect(v.token).toBe(`${id.outputs.result}.${secret.outputs.result}`);
  });
});

describe("discovery hash", () => {
  it("equals openssl's sha256 of the DER SubjectPublicKeyInfo (ECDSA and RSA)", async () => {
    for (const r of [ecdsa, rsa]) {
      const pem = certOf(r, "pki-kubernetes-ca-cert").toString();
      const f = write(`hash-${Math.random()}.pem`, pem);
      const sh = execFileSync("bash", ["-c", `openssl x509 -pubkey -noout -in ${f} | openssl pkey -pubin -outform der | sha256sum`], { encoding: "utf8" });
      const expected = `sha256:${sh.split(/\s+/)[0]}`;
      expect(discoveryHash(pem)).toBe(expected);
      const join = await valueOf(r.outputs!.joinInfo as pulumi.Output<{ caCertHash: string }>);
      expect(join.caCertHash).toBe(expected);
    }
  });
  it("differs between CAs", () => {
    expect(discoveryHash(certOf(ecdsa, "pki-kubernetes-ca-cert").toString())).not.toBe(discoveryHash(certOf(ecdsa, "pki-etcd-ca-cert").toString()));
  });
});

describe("kubeconfig", () => {
  it("points at the VIP, trusts the cluster CA and carries the admin credentials", async () => {
    const out = ecdsa.outputs!;
    expect(await pulumi.isSecret(out.kubeconfig as pulumi.Output<string>)).toBe(true);
    const doc = parse(await valueOf(out.kubeconfig as pulumi.Output<string>));
    const b64 = (s: string) => Buffer.from(s, "base64").toString("utf8");
    expect(doc.kind).toBe("Config");
    expect(doc.clusters[0].cluster.server).toBe("https://10.123.0.100:6443");
    expect(b64(doc.clusters[0].cluster["certificate-authority-data"])).toBe(certOf(ecdsa, "pki-kubernetes-ca-cert").toString());
    const user = doc.users[0].user;
    const key = ecdsa.harness.registrations.find((x) => x.name === "pki-admin-key")!.outputs.privateKeyPem;
    expect(b64(user["client-key-data"])).toBe(key);
    const cert = new X509Certificate(b64(user["client-certificate-data"]));
    expect(cert.checkPrivateKey(createPublicKey(key) && require("node:crypto").createPrivateKey(key))).toBe(true);
    expect(doc["current-context"]).toBe(doc.contexts[0].name);
  });
});
