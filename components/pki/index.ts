/**
 * `ClusterPki` (hakube:pki:ClusterPki): the cluster's certificate authorities, the
 * service-account key pair, the admin client certificate and the bootstrap token — made on the
 * machine that runs Pulumi, kept in the (encrypted) state, and flowing as data to the hosts.
 */
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import * as tls from "@pulumi/tls";
import type { EncryptionAlgorithm } from "../config/spec";
import { discoveryHash } from "./render";

export { discoveryHash, renderKubeconfig, apiServerUrl, joinEndpoint } from "./render";

export const CA_VALIDITY_HOURS = 10 * 365 * 24;
export const CLIENT_VALIDITY_HOURS = 365 * 24;
/** `pulumi up` replaces a leaf certificate in its last 30 days. */
export const EARLY_RENEWAL_HOURS = 30 * 24;

/** A certificate and its key. `keyPem` is secret. */
export interface CertPair {
  certPem: pulumi.Output<string>;
  keyPem: pulumi.Output<string>;
  /** RFC 3339; the certificate is not valid before it (it is not backdated). */
  validityStartTime: pulumi.Output<string>;
}

/** tls.PrivateKey arguments for kubeadm's `encryptionAlgorithm`. */
export function keyArgs(algorithm: EncryptionAlgorithm): tls.PrivateKeyArgs {
  return algorithm === "RSA-2048" ? { algorithm: "RSA", rsaBits: 2048 } : { algorithm: "ECDSA", ecdsaCurve: "P256" };
}

/** Key usages for a leaf certificate: keyEncipherment only makes sense for RSA keys. */
export function leafUsages(algorithm: EncryptionAlgorithm, extended: ("server_auth" | "client_auth")[]): string[] {
  return ["digital_signature", ...(algorithm === "RSA-2048" ? ["key_encipherment"] : []), ...extended];
}

export interface LeafCertArgs {
  /** The issuing CA (one of `ClusterPki`'s); its key is secret. */
  ca: CertPair;
  /** Key type of the new key: `ECDSA-P256` or `RSA-2048` (RSA also gets keyEncipherment). */
  algorithm: EncryptionAlgorithm;
  /** Subject CN (e.g. the host name, or `kube-apiserver-etcd-client`). */
  commonName: string;
  /** Optional subject O (Kubernetes reads it as the group, e.g. `kubeadm:cluster-admins`). Default none. */
  organization?: string;
  /** DNS SANs. Default none. */
  dnsNames?: string[];
  /** IP SANs (IPv4/IPv6 literals). Default none. */
  ipAddresses?: string[];
  /** Extended key usages; digitalSignature is always set. At least one. */
  usages: ("server_auth" | "client_auth")[];
  /** Validity in hours; default `CLIENT_VALIDITY_HOURS` (1 year). `pulumi up` replaces it in its last 30 days (`EARLY_RENEWAL_HOURS`). */
  validityHours?: number;
}

/**
 * Issue a leaf certificate from one of our CAs: a key, a CSR and the signed certificate,
 * named `${name}-key`, `${name}-csr`, `${name}-cert` under `parent`.
 */
export function issueCertificate(name: string, a: LeafCertArgs, parent: pulumi.Resource): CertPair {
  const key = new tls.PrivateKey(`${name}-key`, keyArgs(a.algorithm), { parent });
  const csr = new tls.CertRequest(
    `${name}-csr`,
    {
      privateKeyPem: key.privateKeyPem,
      subject: { commonName: a.commonName, ...(a.organization ? { organization: a.organization } : {}) },
      dnsNames: a.dnsNames ?? [],
      ipAddresses: a.ipAddresses ?? [],
    },
    { parent },
  );
  const cert = new tls.LocallySignedCert(
    `${name}-cert`,
    {
      certRequestPem: csr.certRequestPem,
      caCertPem: a.ca.certPem,
      caPrivateKeyPem: a.ca.keyPem,
      validityPeriodHours: a.validityHours ?? CLIENT_VALIDITY_HOURS,
      earlyRenewalHours: EARLY_RENEWAL_HOURS,
      allowedUses: leafUsages(a.algorithm, a.usages),
      setSubjectKeyId: true,
    },
    { parent },
  );
  return { certPem: cert.certPem, keyPem: pulumi.secret(key.privateKeyPem), validityStartTime: cert.validityStartTime };
}

export interface ClusterPkiArgs {
  /** Cluster name: the CAs' subject organization `hakube:<clusterName>`. Changing it replaces every CA (a new cluster identity). */
  clusterName: string;
  /** Key type of every key made here: `ECDSA-P256` (default of `hakube:kubernetes.encryptionAlgorithm`) or `RSA-2048`. Changing it replaces every key. CAs are valid 10 years, the admin certificate 1 year (renewed by `pulumi up` in its last 30 days). */
  algorithm: EncryptionAlgorithm;
}

export class ClusterPki extends pulumi.ComponentResource {
  /** Kubernetes cluster CA (kubeadm `ca.crt`/`ca.key`). */
  readonly kubernetesCa: CertPair;
  /** Front-proxy CA (kubeadm `front-proxy-ca.*`). */
  readonly frontProxyCa: CertPair;
  /** etcd CA (kubeadm `etcd/ca.*`). */
  readonly etcdCa: CertPair;
  /** Service-account signing key pair (kubeadm `sa.key`/`sa.pub`); `privateKeyPem` is secret. */
  readonly serviceAccount: { publicKeyPem: pulumi.Output<string>; privateKeyPem: pulumi.Output<string> };
  /** Admin client certificate (group kubeadm:cluster-admins) for the exported kubeconfig. */
  readonly admin: CertPair;
  /** kubeadm bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}` (secret). */
  readonly bootstrapToken: pulumi.Output<string>;
  /** The token's id (before the dot): public by design. */
  readonly bootstrapTokenId: pulumi.Output<string>;
  /** `sha256:<hex>` of the Kubernetes CA's public key (kubeadm discovery). */
  readonly caCertHash: pulumi.Output<string>;
  readonly algorithm: EncryptionAlgorithm;

  constructor(name: string, args: ClusterPkiArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hakube:pki:ClusterPki", name, {}, opts);
    this.algorithm = args.algorithm;
    const ca = (id: string, commonName: string): CertPair => {
      const key = new tls.PrivateKey(`${name}-${id}-key`, keyArgs(args.algorithm), { parent: this });
      const cert = new tls.SelfSignedCert(
        `${name}-${id}-cert`,
        {
          privateKeyPem: key.privateKeyPem,
          subject: { commonName, organization: `hakube:${args.clusterName}` },
          isCaCertificate: true,
          validityPeriodHours: CA_VALIDITY_HOURS,
          allowedUses: ["cert_signing", "crl_signing", "digital_signature"],
          setSubjectKeyId: true,
        },
        { parent: this },
      );
      return { certPem: cert.certPem, keyPem: pulumi.secret(key.privateKeyPem), validityStartTime: cert.validityStartTime };
    };
    this.kubernetesCa = ca("kubernetes-ca", "kubernetes");
    this.frontProxyCa = ca("front-proxy-ca", "front-proxy-ca");
    this.etcdCa = ca("etcd-ca", "etcd-ca");

    const sa = new tls.PrivateKey(`${name}-service-account-key`, keyArgs(args.algorithm), { parent: this });
    this.serviceAccount = { publicKeyPem: sa.publicKeyPem, privateKeyPem: pulumi.secret(sa.privateKeyPem) };

    this.admin = issueCertificate(
      `${name}-admin`,
      {
        ca: this.kubernetesCa,
        algorithm: args.algorithm,
        commonName: "kubernetes-admin",
        organization: "kubeadm:cluster-admins",
        usages: ["client_auth"],
        validityHours: CLIENT_VALIDITY_HOURS,
      },
      this,
    );

    const tokenPart = (id: string, length: number, secret: boolean) =>
      new random.RandomString(
        `${name}-${id}`,
        { length, lower: true, upper: false, numeric: true, special: false },
        { parent: this, ...(secret ? { additionalSecretOutputs: ["result"] } : {}) },
      );
    const tokenId = tokenPart("bootstrap-token-id", 6, false);
    const tokenSecret = tokenPart("bootstrap-token-secret", 16, true);
    this.bootstrapTokenId = tokenId.result;
    this.bootstrapToken = pulumi.secret(pulumi.interpolate`${tokenId.result}.${tokenSecret.result}`);
    this.caCertHash = this.kubernetesCa.certPem.apply(discoveryHash);

    this.registerOutputs({
      kubernetesCaCertPem: this.kubernetesCa.certPem,
      frontProxyCaCertPem: this.frontProxyCa.certPem,
      etcdCaCertPem: this.etcdCa.certPem,
      serviceAccountPublicKeyPem: this.serviceAccount.publicKeyPem,
      adminCertPem: this.admin.certPem,
      bootstrapTokenId: this.bootstrapTokenId,
      caCertHash: this.caCertHash,
    });
  }

  /** Validity starts of the CAs (every host trusts at least one of them). */
  get caValidityStarts(): pulumi.Output<string>[] {
    return [this.kubernetesCa.validityStartTime, this.frontProxyCa.validityStartTime, this.etcdCa.validityStartTime];
  }
}
