/**
 * Pure PKI helpers: the kubeadm discovery hash and the admin kubeconfig. No Pulumi import.
 */
import { createHash, X509Certificate } from "node:crypto";
import { stringify } from "yaml";

/**
 * kubeadm's `--discovery-token-ca-cert-hash`: `sha256:` + hex SHA-256 of the CA certificate's
 * DER-encoded SubjectPublicKeyInfo.
 */
export function discoveryHash(caCertPem: string): string {
  const spki = new X509Certificate(caCertPem).publicKey.export({ type: "spki", format: "der" });
  return `sha256:${createHash("sha256").update(spki).digest("hex")}`;
}

export interface KubeconfigInput {
  clusterName: string;
  /** `https://<vip>:<port>` */
  server: string;
  caCertPem: string;
  clientCertPem: string;
  clientKeyPem: string;
  /** user name in the file (default `<cluster>-admin`) */
  user?: string;
}

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");

/** An admin kubeconfig, built as an object and serialised with `yaml`. */
export function renderKubeconfig(k: KubeconfigInput): string {
  const user = k.user ?? `${k.clusterName}-admin`;
  const context = `${user}@${k.clusterName}`;
  return stringify(
    {
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: k.clusterName, cluster: { server: k.server, "certificate-authority-data": b64(k.caCertPem) } }],
      users: [{ name: user, user: { "client-certificate-data": b64(k.clientCertPem), "client-key-data": b64(k.clientKeyPem) } }],
      contexts: [{ name: context, context: { cluster: k.clusterName, user } }],
      "current-context": context,
      preferences: {},
    },
    { lineWidth: 0 },
  );
}

/** `https://<vip>:<port>` */
export function apiServerUrl(vip: string, port: number): string {
  return `https://${vip}:${port}`;
}

/** kubeadm's join endpoint form: `<vip>:<port>` (no scheme). */
export function joinEndpoint(vip: string, port: number): string {
  return `${vip}:${port}`;
}
