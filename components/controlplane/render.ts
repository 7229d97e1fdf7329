/**
 * Control-plane scripts: the `kubeadm` step (PKI placement, kubeadm configuration, init or join),
 * its delete, and the CNI step. Pure: no Pulumi import.
 */
import { createHash } from "node:crypto";
import { stringify } from "yaml";
import { APISERVER_PORT, CNI_VERSIONS } from "../config/defaults";
import type { CniImage, CniPatch, CniSpec } from "../config/spec";
import { ETCD_FILES, PKI_DIR } from "../node/kubeadm";
import {
  ADMIN_KUBECONFIG,
  adminKubectlFunctions,
  checkTokenFunction,
  CONTAINERD_SOCKET,
  HAKUBE_KUBE_DIR,
  installKubeadmConfigFunction,
  resetNodeFunction,
  runKubeadmFunction,
} from "../node/render";
import { putFile, putFileFromStdin, shq, shqAll } from "../remote/shell";

/** Positions of the secret payloads (stdin) of the `kubeadm` step. */
export const CP_STDIN = {
  joinConfig: 0,
  token: 1,
  caKey: 2,
  frontProxyCaKey: 3,
  saKey: 4,
  etcdClientKey: 5,
  /** first control plane only */
  initConfig: 6,
} as const;

export const INIT_CONFIG_PATH = `${HAKUBE_KUBE_DIR}/kubeadm-init.yaml`;
export const JOIN_CONFIG_PATH = `${HAKUBE_KUBE_DIR}/kubeadm-join.yaml`;

/** Public PKI files placed before kubeadm runs (keys come on stdin). */
export interface ControlPlanePublicFiles {
  caCertPem: string;
  frontProxyCaCertPem: string;
  serviceAccountPublicKeyPem: string;
  etcdCaCertPem: string;
  etcdClientCertPem: string;
}

export interface ControlPlaneScriptInput {
  host: string;
  internalAddress: string;
  /** The first control plane inits the cluster (or joins when one already answers at the endpoint). */
  first: boolean;
  /** `<vip>:<port>` */
  endpoint: string;
  files: ControlPlanePublicFiles;
  /** Token-less renderings of the kubeadm files (they reach the host on stdin): shown in previews. */
  preview: { init?: string; join: string };
}

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

export function renderControlPlaneScript(o: ControlPlaneScriptInput): string {
  const pem = (s: string) => (s.endsWith("\n") ? s : `${s}\n`);
  const guarded: [string, string][] = [
    ["ca.crt", pem(o.files.caCertPem)],
    ["front-proxy-ca.crt", pem(o.files.frontProxyCaCertPem)],
    ["sa.pub", pem(o.files.serviceAccountPublicKeyPem)],
  ];
  const etcdFiles = [ETCD_FILES.caFile, ETCD_FILES.certFile, ETCD_FILES.keyFile];
  const previews = [
    ...(o.preview.init ? [o.preview.init] : []),
    o.preview.join,
  ].join("\n");
  const decide = o.first
    ? `# first control plane: init, unless a control plane already answers at the endpoint (e.g. this host replaces the first one)
if curl -fs --max-time 5 --cacert ${shq(`${PKI_DIR}/ca.crt`)} -o /dev/null ${shq(`https://${o.endpoint}/api/v1/namespaces/kube-public/configmaps/cluster-info`)}; then
  echo "a control plane already answers at ${o.endpoint}: joining it instead of running kubeadm init"
  mode="join"
else
  mode=init
fi`
    : `mode="join"`;
  return `# control plane ${o.host}: PKI files, kubeadm configuration (validated), then kubeadm ${o.first ? "init (or join)" : "join"}
${previews}
pki=${shq(PKI_DIR)}
tmpd=$(mktemp -d)
trap 'rm -rf "$tmpd"' EXIT
initialised() { [ -f /etc/kubernetes/kubelet.conf ] && [ -f /etc/kubernetes/manifests/kube-apiserver.yaml ]; }

# this program owns the cluster's CAs: never swap them under a running control plane
if initialised; then
  for pair in ${shqAll(guarded.map(([f, c]) => `${f}:${sha256(c)}`))}; do
    f=\${pair%%:*}
    if [ -f "$pki/$f" ] && [ "$(sha256sum < "$pki/$f" | awk '{ print $1 }')" != "\${pair#*:}" ]; then
      hakube_fail "$pki/$f differs from this program's cluster PKI: replacing the CA of a running cluster is not supported"
    fi
  done
fi

# PKI placement before kubeadm runs: the shared CAs and keys (manual certificate distribution, no upload-certs)
hakube_dir /etc/kubernetes 0755 root root
hakube_dir "$pki" 0700 root root
hakube_dir "$pki/etcd" 0700 root root
${putFile({ path: `${PKI_DIR}/ca.crt`, mode: "0644", content: pem(o.files.caCertPem) })}
${putFileFromStdin({ path: `${PKI_DIR}/ca.key`, index: CP_STDIN.caKey })}
${putFile({ path: `${PKI_DIR}/front-proxy-ca.crt`, mode: "0644", content: pem(o.files.frontProxyCaCertPem) })}
${putFileFromStdin({ path: `${PKI_DIR}/front-proxy-ca.key`, index: CP_STDIN.frontProxyCaKey })}
${putFile({ path: `${PKI_DIR}/sa.pub`, mode: "0644", content: pem(o.files.serviceAccountPublicKeyPem) })}
${putFileFromStdin({ path: `${PKI_DIR}/sa.key`, index: CP_STDIN.saKey })}
${putFile({ path: ETCD_FILES.caFile, mode: "0644", content: pem(o.files.etcdCaCertPem) })}
${putFile({ path: ETCD_FILES.certFile, mode: "0644", content: pem(o.files.etcdClientCertPem) })}
${putFileFromStdin({ path: ETCD_FILES.keyFile, index: CP_STDIN.etcdClientKey })}

# kubeadm configuration (it holds the bootstrap token: stdin only), validated before it is installed
${installKubeadmConfigFunction()}
install_kubeadm_config ${CP_STDIN.joinConfig} ${shq(JOIN_CONFIG_PATH)}
${o.first ? `install_kubeadm_config ${CP_STDIN.initConfig} ${shq(INIT_CONFIG_PATH)}\n` : ""}
apiserver_ready() { curl -fs --max-time 5 --cacert "$pki/ca.crt" -o /dev/null ${shq(`https://${o.internalAddress}:${APISERVER_PORT}/readyz`)}; }
if initialised; then
  if hakube_changed_any ${shqAll(etcdFiles)}; then
    # the API server reads its etcd client certificate at start: restart it (the kubelet starts it again)
    ids=$(crictl --runtime-endpoint ${shq(`unix://${CONTAINERD_SOCKET}`)} ps --name '^kube-apiserver$' -q 2>/dev/null || true)
    [ -z "$ids" ] || crictl --runtime-endpoint ${shq(`unix://${CONTAINERD_SOCKET}`)} stop $ids >/dev/null
    echo "restarted kube-apiserver (its etcd client files changed)"
    sleep 2
    hakube_retry 300 "kube-apiserver ready on ${o.internalAddress}:${APISERVER_PORT}" apiserver_ready
  fi
  echo "ok: ${o.host} is already a control plane"
  exit 0
fi

${decide}
${checkTokenFunction()}
if [ "$mode" = join ]; then
  token=$(printf '%s' "\${HAKUBE_STDIN[${CP_STDIN.token}]}" | base64 -d)
  check_bootstrap_token ${shq(o.endpoint)} "\${token%%.*}"
  unset token
fi
${runKubeadmFunction()}
run_kubeadm "$mode" "${HAKUBE_KUBE_DIR}/kubeadm-$mode.yaml"
hakube_retry 300 "kube-apiserver ready on ${o.internalAddress}:${APISERVER_PORT}" apiserver_ready
${adminKubectlFunctions()}
registered() { kc get node ${shq(o.host)} >/dev/null 2>&1; }
hakube_retry 120 "node ${o.host} registered" registered
echo "ok: ${o.host} is a control plane ($mode)"
`;
}

/**
 * Delete of a control plane's `kubeadm` step: drain its node (when the API answers), reset kubeadm
 * and clean up, then delete the Node object with a saved copy of admin.conf (the other control
 * planes serve the endpoint). Never fails because the cluster is gone.
 */
export function renderControlPlaneDeleteScript(o: { host: string }): string {
  return `# remove control plane ${o.host}: drain, kubeadm reset, clean up, delete the node
tmpd=$(mktemp -d)
trap 'rm -rf "$tmpd"' EXIT
${resetNodeFunction()}
have_admin=0
if [ -f ${ADMIN_KUBECONFIG} ] && command -v kubectl >/dev/null 2>&1; then
  install -m 0600 ${ADMIN_KUBECONFIG} "$tmpd/admin.conf"
  have_admin=1
fi
kc() { kubectl --kubeconfig "$tmpd/admin.conf" --request-timeout=20s "$@"; }
if [ "$have_admin" = 1 ] && kc get node ${shq(o.host)} >/dev/null 2>&1; then
  kc drain ${shq(o.host)} --ignore-daemonsets --delete-emptydir-data --force --timeout=120s >/dev/null 2>&1 \\
    && echo "drained ${o.host}" || echo "warning: draining ${o.host} did not finish; continuing"
fi
reset_node
if [ "$have_admin" = 1 ]; then
  kc delete node ${shq(o.host)} --ignore-not-found --wait=false >/dev/null 2>&1 \\
    && echo "deleted node ${o.host}" || echo "warning: cannot delete node ${o.host} (API unreachable?): delete it with kubectl"
fi
echo "ok: ${o.host} removed"
`;
}

/* ------------------------------------------------------------------ CNI */

export const CNI_DIR = `${HAKUBE_KUBE_DIR}/cni`;

export function defaultManifestUrl(plugin: CniSpec["plugin"]): string | undefined {
  if (plugin === "calico") return `https://raw.githubusercontent.com/projectcalico/calico/v${CNI_VERSIONS.calico}/manifests/calico.yaml`;
  if (plugin === "flannel") return `https://github.com/flannel-io/flannel/releases/download/v${CNI_VERSIONS.flannel}/kube-flannel.yml`;
  return undefined;
}

/**
 * The kustomization that turns the downloaded manifest into what is applied: the pod subnet set
 * YAML-aware (kustomize strategic-merge patches, run by `kubectl kustomize`), never by text edits.
 * - calico: `CALICO_IPV4POOL_CIDR` on the calico-node container (the IP pool made at first start)
 * - flannel: `net-conf.json` of ConfigMap kube-flannel-cfg (`Network` must equal the pod subnet)
 * - cilium: applied as given (render it with `ipam.mode=kubernetes`: node podCIDRs come from the pod subnet)
 * then the user's `cni.patches` (after hakube's, so they can override it) and `cni.images` (renames for
 * a mirrored registry), both kustomize's own fields.
 */
export function renderKustomization(plugin: CniSpec["plugin"], podSubnet: string, extra: { images?: CniImage[]; patches?: CniPatch[] } = {}): string {
  const patches: { target: Record<string, string>; patch: string }[] = [];
  if (plugin === "calico") {
    const id = { kind: "DaemonSet", name: "calico-node", namespace: "kube-system" };
    patches.push({
      target: id,
      patch: stringify({
        apiVersion: "apps/v1",
        kind: id.kind,
        metadata: { name: id.name, namespace: id.namespace },
        spec: { template: { spec: { containers: [{ name: "calico-node", env: [{ name: "CALICO_IPV4POOL_CIDR", value: podSubnet }] }] } } },
      }),
    });
  }
  if (plugin === "flannel") {
    const id = { kind: "ConfigMap", name: "kube-flannel-cfg", namespace: "kube-flannel" };
    patches.push({
      target: id,
      patch: stringify({
        apiVersion: "v1",
        kind: id.kind,
        metadata: { name: id.name, namespace: id.namespace },
        data: { "net-conf.json": JSON.stringify({ Network: podSubnet, EnableNFTables: false, Backend: { Type: "vxlan" } }, null, 2) + "\n" },
      }),
    });
  }
  for (const u of extra.patches ?? []) patches.push({ target: { ...u.target }, patch: stringify(u.patch, { lineWidth: 0 }) });
  const images = (extra.images ?? []).map((i) => ({ ...i }));
  return stringify(
    {
      apiVersion: "kustomize.config.k8s.io/v1beta1",
      kind: "Kustomization",
      resources: ["manifest.yaml"],
      ...(patches.length ? { patches } : {}),
      ...(images.length ? { images } : {}),
    },
    { lineWidth: 0 },
  );
}

export interface CniScriptInput {
  host: string;
  plugin: Exclude<CniSpec["plugin"], "none">;
  manifestUrl: string;
  podSubnet: string;
  images?: CniImage[];
  patches?: CniPatch[];
}

export function renderCniScript(o: CniScriptInput): string {
  const dir = CNI_DIR;
  return `# CNI ${o.plugin} from ${o.manifestUrl} (pod subnet ${o.podSubnet}), applied server-side from ${o.host}
${adminKubectlFunctions()}
tmpd=$(mktemp -d)
trap 'rm -rf "$tmpd"' EXIT
hakube_dir ${shq(HAKUBE_KUBE_DIR)} 0700 root root
hakube_dir ${shq(dir)} 0700 root root
curl -fsSL --retry 3 --max-time 120 -o "$tmpd/manifest.yaml" ${shq(o.manifestUrl)} || hakube_fail "cannot download ${o.manifestUrl}"
[ -s "$tmpd/manifest.yaml" ] || hakube_fail "${o.manifestUrl} is empty"
hakube_put ${shq(`${dir}/manifest.yaml`)} 0600 root root < "$tmpd/manifest.yaml"
${putFile({ path: `${dir}/kustomization.yaml`, mode: "0600", content: renderKustomization(o.plugin, o.podSubnet, { images: o.images, patches: o.patches }) })}
# kustomize (built into kubectl) applies the pod-subnet patch YAML-aware; it fails when the patch target is missing
kubectl kustomize ${shq(dir)} > "$tmpd/rendered.yaml" 2> "$tmpd/kustomize.err" \\
  || hakube_fail "kubectl kustomize ${dir} failed (is ${o.manifestUrl} a ${o.plugin} manifest?): $(tail -n 5 "$tmpd/kustomize.err")"
sum=$(sha256sum < "$tmpd/rendered.yaml" | awk '{ print $1 }')
if [ "$(cat ${shq(`${dir}/applied.sha256`)} 2>/dev/null || true)" = "$sum" ]; then
  echo "ok: ${o.plugin} manifest unchanged since it was applied"
  exit 0
fi
hakube_retry 300 "the API server (kubectl --kubeconfig ${ADMIN_KUBECONFIG})" api_ready
kc apply --server-side --force-conflicts --field-manager=hakube -f "$tmpd/rendered.yaml" > "$tmpd/apply.out" 2>&1 \\
  || hakube_fail "kubectl apply of the ${o.plugin} manifest failed: $(tail -n 10 "$tmpd/apply.out")"
printf '%s\\n' "$sum" | hakube_put ${shq(`${dir}/applied.sha256`)} 0600 root root
echo "applied ${o.plugin} ($(grep -c . "$tmpd/apply.out" || true) objects)"
# the network works once this node is Ready
kc wait --for=condition=Ready node/${shq(o.host)} --timeout=600s >/dev/null 2>&1 \\
  || hakube_fail "node ${o.host} is not Ready 10 minutes after applying ${o.plugin}: $(kc get pods -A --field-selector spec.nodeName=${shq(o.host)} --no-headers 2>/dev/null | awk '$4 != "Running"' | head -n 5)"
echo "ok: ${o.plugin} applied, ${o.host} Ready"
`;
}
