/**
 * What the tls and random providers do, done for real with node:crypto and @peculiar/x509:
 * keys in the tls provider's PEM formats, self-signed and CA-signed certificates (SANs, key
 * usages, validity), CSRs, and random strings honouring their options.
 */
import "reflect-metadata"; // @peculiar/x509 needs it (tsyringe)
import * as x509 from "@peculiar/x509";
import * as nodeCrypto from "node:crypto";

const webcrypto = nodeCrypto.webcrypto;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
x509.cryptoProvider.set(webcrypto as any);

const curves: Record<string, string> = { P224: "P-224", P256: "P-256", P384: "P-384", P521: "P-521" };
const hashFor: Record<string, string> = { "P-224": "SHA-256", "P-256": "SHA-256", "P-384": "SHA-384", "P-521": "SHA-512" };
const openSslCurve: Record<string, string> = { prime256v1: "P-256", secp384r1: "P-384", secp521r1: "P-521", secp224r1: "P-224" };

type Alg = { name: string; namedCurve?: string; hash?: string };
function algorithmOf(pem: string) {
  const priv = nodeCrypto.createPrivateKey(pem);
  const t = priv.asymmetricKeyType;
  if (t === "ec") {
    const namedCurve = openSslCurve[priv.asymmetricKeyDetails!.namedCurve!];
    return { priv, kind: "ECDSA", imp: { name: "ECDSA", namedCurve } as Alg, sig: { name: "ECDSA", hash: hashFor[namedCurve] } as Alg };
  }
  if (t === "rsa")
    return { priv, kind: "RSA", imp: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } as Alg, sig: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } as Alg };
  if (t === "ed25519") return { priv, kind: "ED25519", imp: { name: "Ed25519" } as Alg, sig: { name: "Ed25519" } as Alg };
  throw new Error(`unsupported key type ${t}`);
}

async function cryptoKeys(pem: string) {
  const k = algorithmOf(pem);
  const pkcs8 = k.priv.export({ type: "pkcs8", format: "der" });
  const spki = nodeCrypto.createPublicKey(k.priv).export({ type: "spki", format: "der" });
  const privateKey = await webcrypto.subtle.importKey("pkcs8", pkcs8, k.imp, true, ["sign"]);
  const publicKey = await webcrypto.subtle.importKey("spki", spki, k.imp, true, ["verify"]);
  return { ...k, keys: { privateKey, publicKey } as any };
}

function subjectName(s: Record<string, unknown> = {}): x509.JsonName {
  const n: x509.JsonName = [];
  const add = (t: string, v: unknown) => {
    for (const x of ([] as unknown[]).concat(v ?? [])) if (typeof x === "string" && x) n.push({ [t]: [x] });
  };
  add("C", s.country);
  add("ST", s.province);
  add("L", s.locality);
  add("street", s.streetAddresses);
  add("postalCode", s.postalCode);
  add("O", s.organization);
  add("OU", s.organizationalUnit);
  add("serialNumber", s.serialNumber);
  add("CN", s.commonName);
  return n;
}

const keyUsageBits: Record<string, number> = {
  digital_signature: x509.KeyUsageFlags.digitalSignature,
  content_commitment: x509.KeyUsageFlags.nonRepudiation,
  key_encipherment: x509.KeyUsageFlags.keyEncipherment,
  data_encipherment: x509.KeyUsageFlags.dataEncipherment,
  key_agreement: x509.KeyUsageFlags.keyAgreement,
  cert_signing: x509.KeyUsageFlags.keyCertSign,
  crl_signing: x509.KeyUsageFlags.cRLSign,
  encipher_only: x509.KeyUsageFlags.encipherOnly,
  decipher_only: x509.KeyUsageFlags.decipherOnly,
};
const extendedUsageOids: Record<string, string> = {
  any_extended: "2.5.29.37.0",
  server_auth: x509.ExtendedKeyUsage.serverAuth,
  client_auth: x509.ExtendedKeyUsage.clientAuth,
  code_signing: x509.ExtendedKeyUsage.codeSigning,
  email_protection: x509.ExtendedKeyUsage.emailProtection,
  timestamping: x509.ExtendedKeyUsage.timeStamping,
  ocsp_signing: x509.ExtendedKeyUsage.ocspSigning,
};

function sanExtension(dns: string[] = [], ips: string[] = [], uris: string[] = []): x509.Extension[] {
  const names = [
    ...dns.map((value) => ({ type: "dns" as const, value })),
    ...ips.map((value) => ({ type: "ip" as const, value })),
    ...uris.map((value) => ({ type: "url" as const, value })),
  ];
  return names.length ? [new x509.SubjectAlternativeNameExtension(names)] : [];
}

function usageExtensions(allowed: string[] = [], isCa = false): x509.Extension[] {
  for (const u of allowed)
    if (!(u in keyUsageBits) && !(u in extendedUsageOids)) throw new Error(`tls: unknown allowed use ${JSON.stringify(u)}`);
  const exts: x509.Extension[] = [];
  const ku = allowed.reduce((a, u) => a | (keyUsageBits[u] ?? 0), 0);
  if (ku) exts.push(new x509.KeyUsagesExtension(ku, true));
  const eku = allowed.filter((u) => extendedUsageOids[u]).map((u) => extendedUsageOids[u]);
  if (eku.length) exts.push(new x509.ExtendedKeyUsageExtension(eku, false));
  exts.push(new x509.BasicConstraintsExtension(isCa, undefined, true));
  return exts;
}

function serialNumber(): string {
  const b = nodeCrypto.randomBytes(16);
  b[0] &= 0x7f;
  if (b[0] === 0) b[0] = 1;
  return b.toString("hex");
}

/** The tls provider's validity: from now (seconds precision, not backdated). */
function validity(hours: number) {
  const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000);
  const notAfter = new Date(notBefore.getTime() + hours * 3600_000);
  const rfc = (d: Date) => d.toISOString().replace(/\.\d+Z$/, "Z");
  return { notBefore, notAfter, validityStartTime: rfc(notBefore), validityEndTime: rfc(notAfter) };
}

export async function privateKey(i: { algorithm: string; rsaBits?: number; ecdsaCurve?: string }) {
  let kp: { publicKey: nodeCrypto.KeyObject; privateKey: nodeCrypto.KeyObject };
  if (i.algorithm === "RSA") kp = nodeCrypto.generateKeyPairSync("rsa", { modulusLength: i.rsaBits ?? 2048 });
  else if (i.algorithm === "ECDSA") kp = nodeCrypto.generateKeyPairSync("ec", { namedCurve: curves[i.ecdsaCurve ?? "P224"] });
  else if (i.algorithm === "ED25519") kp = nodeCrypto.generateKeyPairSync("ed25519");
  else throw new Error(`tls: unsupported algorithm ${i.algorithm}`);
  const pem =
    i.algorithm === "RSA"
      ? kp.privateKey.export({ type: "pkcs1", format: "pem" })
      : i.algorithm === "ECDSA"
        ? kp.privateKey.export({ type: "sec1", format: "pem" })
        : kp.privateKey.export({ type: "pkcs8", format: "pem" });
  return {
    privateKeyPem: String(pem),
    privateKeyPemPkcs8: String(kp.privateKey.export({ type: "pkcs8", format: "pem" })),
    publicKeyPem: String(kp.publicKey.export({ type: "spki", format: "pem" })),
  };
}

export async function selfSignedCert(i: any) {
  const k = await cryptoKeys(i.privateKeyPem);
  const v = validity(i.validityPeriodHours);
  const exts = [...usageExtensions(i.allowedUses, i.isCaCertificate), ...sanExtension(i.dnsNames, i.ipAddresses, i.uris)];
  if (i.setSubjectKeyId || i.isCaCertificate) exts.push(await x509.SubjectKeyIdentifierExtension.create(k.keys.publicKey));
  if (i.setAuthorityKeyId) exts.push(await x509.AuthorityKeyIdentifierExtension.create(k.keys.publicKey));
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: subjectName(i.subject),
    notBefore: v.notBefore,
    notAfter: v.notAfter,
    keys: k.keys,
    signingAlgorithm: k.sig,
    extensions: exts,
  });
  return { certPem: cert.toString("pem") + "\n", keyAlgorithm: k.kind, validityStartTime: v.validityStartTime, validityEndTime: v.validityEndTime, readyForRenewal: false };
}

export async function certRequest(i: any) {
  const k = await cryptoKeys(i.privateKeyPem);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: subjectName(i.subject),
    keys: k.keys,
    signingAlgorithm: k.sig,
    extensions: sanExtension(i.dnsNames, i.ipAddresses, i.uris),
  });
  return { certRequestPem: csr.toString("pem") + "\n", keyAlgorithm: k.kind };
}

export async function locallySignedCert(i: any) {
  const ca = await cryptoKeys(i.caPrivateKeyPem);
  const caCert = new x509.X509Certificate(i.caCertPem);
  const csr = new x509.Pkcs10CertificateRequest(i.certRequestPem);
  if (!(await csr.verify())) throw new Error("tls: CSR signature invalid");
  const v = validity(i.validityPeriodHours);
  const exts = [...usageExtensions(i.allowedUses, i.isCaCertificate)];
  const san = csr.getExtension("2.5.29.17");
  if (san) exts.push(san); // the tls provider copies the CSR's SANs
  if (i.setSubjectKeyId) exts.push(await x509.SubjectKeyIdentifierExtension.create(await csr.publicKey.export(webcrypto as any)));
  const caSki = caCert.getExtension(x509.SubjectKeyIdentifierExtension);
  if (caSki) exts.push(new x509.AuthorityKeyIdentifierExtension(caSki.keyId));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: csr.subject,
    issuer: caCert.subject,
    notBefore: v.notBefore,
    notAfter: v.notAfter,
    publicKey: csr.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: ca.sig,
    extensions: exts,
  });
  return { certPem: cert.toString("pem") + "\n", caKeyAlgorithm: ca.kind, validityStartTime: v.validityStartTime, validityEndTime: v.validityEndTime, readyForRenewal: false };
}

export function randomString(i: any): string {
  const on = (x: unknown, d = true) => (x === undefined ? d : !!x);
  const lower = "abcdefghijklmnopqrstuvwxyz";
  const upper = lower.toUpperCase();
  const digits = "0123456789";
  const special = i.overrideSpecial ?? "!@#$%&*()-_=+[]{}<>:?";
  const sets: [boolean, string, number][] = [
    [on(i.lower), lower, i.minLower ?? 0],
    [on(i.upper), upper, i.minUpper ?? 0],
    [on(i.numeric ?? i.number), digits, i.minNumeric ?? 0],
    [on(i.special), special, i.minSpecial ?? 0],
  ];
  const pick = (s: string) => s[nodeCrypto.randomInt(s.length)];
  const out: string[] = [];
  for (const [enabled, s, min] of sets) if (enabled) for (let n = 0; n < min; n++) out.push(pick(s));
  const all = sets.filter((s) => s[0]).map((s) => s[1]).join("");
  while (out.length < i.length) out.push(pick(all));
  for (let j = out.length - 1; j > 0; j--) {
    const r = nodeCrypto.randomInt(j + 1);
    [out[j], out[r]] = [out[r], out[j]];
  }
  return out.join("");
}
