/**
 * `etcd.deployment: kubeadm` — kubeadm's recipe for an external HA etcd ("Set up a High
 * Availability etcd cluster with kubeadm"): on every member host a standalone kubelet (no API
 * server, only static pods) runs the etcd static pod that `kubeadm init phase etcd local` writes
 * from a per-host ClusterConfiguration. The certificates are the program's (issued from its etcd
 * CA, placed where kubeadm expects them): no CA key on any etcd host. Pure: no Pulumi import.
 */
import { stringify } from "yaml";
import type { EtcdSpec } from "../config/spec";
import { CRI_SOCKET } from "../node/render";
import { deepMerge, KUBEADM_API, kubeletConfiguration, PKI_DIR } from "../node/kubeadm";
import { shq, shqAll } from "../remote/shell";
import {
  clientUrl,
  deploymentGuard,
  initialCluster,
  initialClusterToken,
  memberPreamble,
  membershipChecks,
  peerUrl,
  PKI_FILES,
  recordMember,
  stageCertificates,
  stageFile,
  STATE_FILES,
  TUNING,
  versionStepCheck,
  WAITS,
  type EtcdMember,
  type EtcdPaths,
  type EtcdTuning,
  type MemberScriptInput,
} from "./render";

/** kubeadm's static pod directory (the standalone kubelet's `staticPodPath`). */
export const MANIFEST_DIR = "/etc/kubernetes/manifests";

/** Where things live on a member host with `deployment: kubeadm`: kubeadm's own paths for the PKI and the manifest. */
export interface KubeadmEtcdPaths extends EtcdPaths {
  /** etcd's static pod, written by `kubeadm init phase etcd local` (the running member's definition). */
  manifestFile: string;
  /** The standalone kubelet's KubeletConfiguration. */
  kubeletConfigFile: string;
  /** The kubelet drop-in that starts the kubelet with it (sorts after the package's 10-kubeadm.conf). */
  kubeletDropIn: string;
}

export const KUBEADM_PATHS: KubeadmEtcdPaths = {
  /** kubeadm's configuration of this member (no secret in it; the directory is hakube's 0700 one). */
  configDir: "/etc/kubernetes/hakube",
  pkiDir: `${PKI_DIR}/etcd`,
  configFile: "/etc/kubernetes/hakube/etcd-kubeadm.yaml",
  unitFile: `${MANIFEST_DIR}/etcd.yaml`,
  manifestFile: `${MANIFEST_DIR}/etcd.yaml`,
  kubeletConfigFile: "/etc/kubernetes/hakube/etcd-kubelet.yaml",
  kubeletDropIn: "/etc/systemd/system/kubelet.service.d/20-hakube-etcd.conf",
  stateDir: "/var/lib/hakube/etcd",
  binDir: "/usr/local/bin",
  distBinDir: "/usr/bin",
};

/** The environment variable kubeadm puts into etcd's container: the member's content stamp, so a change of certificates alone also makes the kubelet restart it. */
export const STAMP_ENV = "HAKUBE_ETCD_STAMP";

/** `<version>-0` (registry.k8s.io's tag scheme for etcd images), or `etcd.imageTag`. */
export function etcdImageTag(e: Pick<EtcdSpec, "version" | "imageTag">): string {
  if (e.imageTag !== undefined) return e.imageTag;
  if (e.version === undefined) throw new Error("hakube: etcd.deployment kubeadm needs etcd.version or etcd.imageTag");
  return `${e.version}-0`;
}

export interface KubeadmEtcdInput {
  member: EtcdMember;
  members: EtcdMember[];
  clusterName: string;
  dataDir: string;
  tuning: EtcdTuning;
  /** `kubernetes.version`: kubeadm's ClusterConfiguration needs one (the etcd image is pinned by `imageTag`). */
  kubernetesVersion: string;
  /** `kubernetes.imageRepository` (unset: kubeadm's default, registry.k8s.io). */
  imageRepository?: string;
  imageTag: string;
  /** The member's content stamp (STAMP_ENV); undefined while the stamp itself is being computed. */
  stamp?: string;
}

/**
 * etcd's flags beyond kubeadm's defaults, as v1beta4 `extraArgs` (a list; each name once, sorted).
 * The same member settings as the systemd deployment's etcd.conf.yml: a bootstrapped fixed member
 * list, the cluster's own token, the Raft tuning, the quota and compaction.
 */
export function etcdExtraArgs(i: Omit<KubeadmEtcdInput, "kubernetesVersion" | "imageRepository" | "imageTag" | "stamp">): { name: string; value: string }[] {
  const args: Record<string, string> = {
    name: i.member.name,
    "listen-peer-urls": peerUrl(i.member),
    "listen-client-urls": `${clientUrl(i.member)},https://127.0.0.1:2379`,
    "initial-advertise-peer-urls": peerUrl(i.member),
    "advertise-client-urls": clientUrl(i.member),
    "initial-cluster": initialCluster(i.members),
    "initial-cluster-state": "new",
    "initial-cluster-token": initialClusterToken(i.clusterName),
    "heartbeat-interval": String(i.tuning.heartbeatIntervalMs),
    "election-timeout": String(i.tuning.electionTimeoutMs),
    "snapshot-count": String(TUNING.snapshotCount),
    "quota-backend-bytes": String(TUNING.quotaBackendBytes),
    "auto-compaction-mode": TUNING.autoCompactionMode,
    "auto-compaction-retention": TUNING.autoCompactionRetention,
  };
  return Object.keys(args)
    .sort()
    .map((name) => ({ name, value: args[name] }));
}

/** The member's kubeadm configuration: InitConfiguration (node name, advertise address) + ClusterConfiguration (etcd.local). */
export function kubeadmEtcdDocuments(i: KubeadmEtcdInput): Record<string, unknown>[] {
  return [
    {
      apiVersion: KUBEADM_API,
      kind: "InitConfiguration",
      nodeRegistration: { name: i.member.name, criSocket: CRI_SOCKET },
      localAPIEndpoint: { advertiseAddress: i.member.internalAddress },
    },
    {
      apiVersion: KUBEADM_API,
      kind: "ClusterConfiguration",
      clusterName: i.clusterName,
      kubernetesVersion: `v${i.kubernetesVersion}`,
      certificatesDir: PKI_DIR,
      ...(i.imageRepository ? { imageRepository: i.imageRepository } : {}),
      etcd: {
        local: {
          ...(i.imageRepository ? { imageRepository: i.imageRepository } : {}),
          imageTag: i.imageTag,
          dataDir: i.dataDir,
          extraArgs: etcdExtraArgs(i),
          ...(i.stamp !== undefined ? { extraEnvs: [{ name: STAMP_ENV, value: i.stamp }] } : {}),
        },
      },
    },
  ];
}

export function renderKubeadmEtcdConfig(i: KubeadmEtcdInput): string {
  return (
    `# etcd member ${i.member.name} of hakube cluster ${i.clusterName} (etcd.deployment kubeadm). Managed by hakube: \`pulumi up\` rewrites this file.\n` +
    kubeadmEtcdDocuments(i)
      .map((d) => stringify(d, { lineWidth: 0 }))
      .join("---\n")
  );
}

/**
 * What the member's static pod is made from (its content stamp's "config"): the image, the data
 * dir and the flags — not the Kubernetes version kubeadm's configuration also names, so a
 * Kubernetes upgrade re-renders the manifest (the step compares it) without restarting etcd
 * unless kubeadm's rendering itself changed.
 */
export function kubeadmMemberSettings(i: KubeadmEtcdInput): string {
  return stringify({ image: etcdImage(i.imageRepository, i.imageTag), dataDir: i.dataDir, extraArgs: etcdExtraArgs(i) }, { lineWidth: 0 });
}

/** The etcd image kubeadm runs: `<repository>/etcd:<tag>`. */
export function etcdImage(imageRepository: string | undefined, tag: string): string {
  return `${imageRepository ?? "registry.k8s.io"}/etcd:${tag}`;
}

/**
 * The standalone kubelet's configuration (kubeadm's recipe): only static pods from MANIFEST_DIR, its
 * API on 127.0.0.1 without anonymous or webhook auth, the systemd cgroup driver; the stack's
 * `kubernetes.allowCgroupV1` and `kubernetes.kubeletConfiguration` apply as on every node, the
 * standalone settings on top.
 */
export function etcdKubeletConfiguration(c: { allowCgroupV1?: boolean; kubeletConfiguration?: Record<string, unknown> }): Record<string, unknown> {
  return deepMerge(kubeletConfiguration(c), {
    address: "127.0.0.1",
    healthzBindAddress: "127.0.0.1",
    readOnlyPort: 0,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: false } },
    authorization: { mode: "AlwaysAllow" },
    containerRuntimeEndpoint: CRI_SOCKET,
    staticPodPath: MANIFEST_DIR,
  });
}

export function renderEtcdKubeletConfig(c: Parameters<typeof etcdKubeletConfiguration>[0], clusterName: string): string {
  return `# the kubelet of an etcd host of hakube cluster ${clusterName}: runs etcd's static pod only (etcd.deployment kubeadm)\n` + stringify(etcdKubeletConfiguration(c), { lineWidth: 0 });
}

/** The kubelet drop-in: the package's unit, started with the standalone configuration (no kubeconfig: it never joins a cluster). */
export function renderKubeletDropIn(paths: KubeadmEtcdPaths = KUBEADM_PATHS): string {
  return `# written by hakube: this kubelet runs etcd's static pod only (etcd.deployment kubeadm); the ExecStart of 10-kubeadm.conf is replaced
[Service]
ExecStart=
ExecStart=kubelet --config=${paths.kubeletConfigFile}
Restart=always
RestartSec=2s
`;
}

/* ------------------------------------------------------------------ member step */

export interface KubeadmMemberScriptInput extends MemberScriptInput {
  /** The member's kubeadm configuration (renderKubeadmEtcdConfig, with the stamp). */
  kubeadmConfig: string;
  kubeletConfig: string;
  kubeletDropIn: string;
  /** The image kubeadm's manifest must name (checked before it is swapped in). */
  image: string;
  paths?: KubeadmEtcdPaths;
}

/** Bash: `etcd_container` prints the ID of the running etcd container (kubelet's static pod), or nothing. */
export function etcdContainerFunction(): string {
  return `etcd_container() { crictl ps --name '^etcd$' --state running -q 2>/dev/null | head -n 1 || true; }`;
}

/**
 * The member step with `deployment: kubeadm`: stage and validate the certificates, kubeadm's
 * configuration and the kubelet's; let kubeadm write etcd's static pod into the stage (`--rootfs`:
 * the running member is untouched);
 * refuse member-list changes; swap the files in and (re)start the standalone kubelet when its own
 * files changed; then the manifest: written as is for a member that is not serving, or — a
 * rolling restart, one member at a time — only once the cluster is healthy, waiting until the
 * kubelet replaced the container and the member and the cluster are healthy again.
 */
export function renderKubeadmMemberScript(m: KubeadmMemberScriptInput): string {
  const paths = m.paths ?? KUBEADM_PATHS;
  const waits = { ...WAITS, ...(m.waits ?? {}) };
  const pki = (f: string) => shq(`${paths.pkiDir}/${f}`);
  return `${memberPreamble(m, paths, "kubeadm")}
${deploymentGuard("kubeadm")}
manifest=${shq(paths.manifestFile)}
for tool in kubeadm kubelet crictl etcdctl; do
  command -v "$tool" >/dev/null 2>&1 || hakube_fail "$tool is not installed (node preparation and the etcd install step put it there)"
done

# 1. Stage every file in a private directory and validate it: nothing is swapped in before all checks pass.
${stageCertificates(m)}
${stageFile("kubeadm.yaml", m.kubeadmConfig)}
${stageFile("kubelet.yaml", m.kubeletConfig)}
${stageFile("kubelet-dropin.conf", m.kubeletDropIn)}
out=$(kubeadm config validate --config "$stage/kubeadm.yaml" 2>&1) || hakube_fail "kubeadm config validate rejects the etcd configuration: $out"
# kubeadm writes etcd's static pod into the stage: --rootfs makes the stage its root (it reads no
# certificate and contacts nothing in this phase; the member running now is untouched)
mkdir -p "$stage/root/etc/kubernetes"
cp "$stage/kubeadm.yaml" "$stage/root/kubeadm.yaml"
if ! kubeadm --rootfs "$stage/root" init phase etcd local --config /kubeadm.yaml > "$stage/kubeadm.log" 2>&1; then
  hakube_fail "kubeadm init phase etcd local failed: $(tail -n 5 "$stage/kubeadm.log")"
fi
mkdir "$stage/manifests"
mv "$stage/root${MANIFEST_DIR}/etcd.yaml" "$stage/manifests/etcd.yaml" 2>/dev/null || true
[ -s "$stage/manifests/etcd.yaml" ] || hakube_fail "kubeadm init phase etcd local wrote no etcd.yaml: $(tail -n 5 "$stage/kubeadm.log")"
for want in ${shqAll([`image: ${m.image}`, `- --name=${m.member.name}`, `- --initial-cluster=${initialCluster(m.members)}`, `- --data-dir=${m.dataDir}`, `value: ${m.stamp}`])}; do
  grep -qF -- "$want" "$stage/manifests/etcd.yaml" || hakube_fail "the static pod kubeadm wrote lacks '$want'"
done

${membershipChecks(m)}

# 3. Swap the validated files in (each atomically, only when different); the manifest comes last (step 5).
hakube_dir ${shq(paths.pkiDir)} 0755 root root
hakube_put ${pki(PKI_FILES.ca)} 0644 root root < "$stage/${PKI_FILES.ca}"
hakube_put ${pki(PKI_FILES.serverCert)} 0644 root root < "$stage/${PKI_FILES.serverCert}"
hakube_put ${pki(PKI_FILES.serverKey)} 0600 root root < "$stage/${PKI_FILES.serverKey}"
hakube_put ${pki(PKI_FILES.peerCert)} 0644 root root < "$stage/${PKI_FILES.peerCert}"
hakube_put ${pki(PKI_FILES.peerKey)} 0600 root root < "$stage/${PKI_FILES.peerKey}"
hakube_put ${pki(PKI_FILES.healthcheckCert)} 0644 root root < "$stage/${PKI_FILES.healthcheckCert}"
hakube_put ${pki(PKI_FILES.healthcheckKey)} 0600 root root < "$stage/${PKI_FILES.healthcheckKey}"
hakube_dir ${shq(paths.configDir)} 0700 root root
hakube_put ${shq(paths.configFile)} 0600 root root < "$stage/kubeadm.yaml"
hakube_put ${shq(paths.kubeletConfigFile)} 0644 root root < "$stage/kubelet.yaml"
hakube_put ${shq(paths.kubeletDropIn)} 0644 root root < "$stage/kubelet-dropin.conf"
hakube_dir "$data_dir" 0700 root root
hakube_dir "$state_dir" 0755 root root
printf '%s\\n' "$owner" | hakube_put "$state_dir/owner" 0644 root root
${recordMember("kubeadm")}

# 4. The standalone kubelet: reloaded and restarted when its drop-in or configuration changed (its pods keep running).
if hakube_changed_any ${shq(paths.kubeletDropIn)} || [ "$(systemctl show -p NeedDaemonReload --value kubelet 2>/dev/null || true)" = yes ]; then
  systemctl daemon-reload
  echo "reloaded systemd units"
fi
if ! systemctl is-enabled --quiet kubelet 2>/dev/null; then
  systemctl enable --quiet kubelet
  echo "enabled kubelet"
fi
if hakube_changed_any ${shqAll([paths.kubeletDropIn, paths.kubeletConfigFile])}; then
  systemctl restart kubelet
  echo "restarted kubelet (its configuration changed)"
elif ! systemctl is-active --quiet kubelet; then
  systemctl reset-failed kubelet 2>/dev/null || true
  systemctl start kubelet
  echo "started kubelet"
fi
kubelet_healthy() { [ "$(curl -fsS --max-time 2 http://127.0.0.1:10248/healthz 2>/dev/null || true)" = ok ]; }
hakube_retry 60 "the kubelet's healthz (journalctl -u kubelet)" kubelet_healthy

# 5. etcd's static pod: start or rolling restart, decided by the stamp of what the running member was started with.
${etcdContainerFunction()}
applied=$(cat "$state_dir/applied" 2>/dev/null || true)
cid=$(etcd_container)
if [ -n "$cid" ] && [ "$applied" = "$stamp" ] && cmp -s "$stage/manifests/etcd.yaml" "$manifest"; then
  echo "ok: $member runs the current configuration"
elif [ -n "$cid" ] && [ -n "$applied" ]; then
  # Rolling restart (the member steps run one host at a time): never take a second member down.
  etcd_wait ${waits.beforeRestart} "before restarting $member (restarting now could lose the quorum)"
${versionStepCheck(m, paths).replace(/^/gm, "  ")}
  t0=$SECONDS
  echo "restarting $member (configuration, certificates or image changed): the kubelet replaces its static pod"
  hakube_put "$manifest" 0600 root root < "$stage/manifests/etcd.yaml"
  until new=$(etcd_container) && [ -n "$new" ] && [ "$new" != "$cid" ]; do
    [ "$SECONDS" -lt "$((t0 + ${waits.afterRestart}))" ] || hakube_fail "the kubelet did not replace etcd's container within ${waits.afterRestart}s (crictl ps -a --name etcd; journalctl -u kubelet)"
    sleep 1
  done
  etcd_wait ${waits.afterRestart} "after restarting $member" "$self_client"
  etcd_wait ${waits.afterRestart} "after restarting $member"
  printf '%s\\n' "$stamp" | hakube_put "$state_dir/applied" 0644 root root >/dev/null
  echo "restarted $member: it and the cluster are healthy again after $((SECONDS - t0))s"
else
  # Not serving our cluster (first start, crashed, still waiting for its peers): writing the
  # manifest takes no serving member down. Never wait here: the health gate waits for a quorum.
  if [ "$fresh" = 1 ]; then
    printf '%s\\n' "$want_cluster" | hakube_put "$state_dir/initial-cluster" 0644 root root >/dev/null
  fi
  if [ "$applied" = "$stamp" ] && cmp -s "$stage/manifests/etcd.yaml" "$manifest"; then
    echo "ok: the kubelet is starting $member"
  else
    hakube_put "$manifest" 0600 root root < "$stage/manifests/etcd.yaml"
    echo "wrote etcd's static pod: the kubelet starts $member; the health gate waits for the cluster"
  fi
  printf '%s\\n' "$stamp" | hakube_put "$state_dir/applied" 0644 root root >/dev/null
fi
`;
}

/**
 * The member step's delete with `deployment: kubeadm`: remove the static pod (the kubelet stops
 * etcd), the kubelet's drop-in and configuration, kubeadm's configuration and the keys; stop and
 * disable the kubelet (it ran nothing else); keep the data directory and the packages. Only when
 * this resource still owns the member.
 */
export function renderKubeadmMemberDeleteScript(d: { owner: string; dataDir: string; paths?: KubeadmEtcdPaths }): string {
  const paths = d.paths ?? KUBEADM_PATHS;
  const files = [
    paths.kubeletDropIn,
    paths.kubeletConfigFile,
    paths.configFile,
    ...Object.values(PKI_FILES).map((f) => `${paths.pkiDir}/${f}`),
    ...STATE_FILES.map((f) => `${paths.stateDir}/${f}`),
  ];
  return `# remove etcd's static pod from this host; its data directory ${d.dataDir} is kept
owner=${shq(d.owner)}
current=$(cat ${shq(`${paths.stateDir}/owner`)} 2>/dev/null || true)
if [ -n "$current" ] && [ "$current" != "$owner" ]; then
  echo "etcd here is managed by $current now: left running"
  exit 0
fi
${etcdContainerFunction()}
if [ -e ${shq(paths.manifestFile)} ]; then
  hakube_remove ${shq(paths.manifestFile)}
  if systemctl is-active --quiet kubelet && command -v crictl >/dev/null 2>&1; then
    etcd_stopped() { [ -z "$(etcd_container)" ]; }
    hakube_retry 90 "etcd's container stopped by the kubelet after its manifest was removed" etcd_stopped
  fi
  echo "removed etcd's static pod"
fi
dropin_present=0
[ ! -e ${shq(paths.kubeletDropIn)} ] || dropin_present=1
hakube_remove ${shqAll(files)}
rmdir --ignore-fail-on-non-empty ${shq(paths.pkiDir)} 2>/dev/null || true
if systemctl is-enabled --quiet kubelet 2>/dev/null || systemctl is-active --quiet kubelet; then
  systemctl disable --now --quiet kubelet
  echo "stopped and disabled kubelet (it ran etcd only)"
fi
[ "$dropin_present" = 0 ] || systemctl daemon-reload
echo "etcd removed; data kept in ${d.dataDir}"
`;
}
