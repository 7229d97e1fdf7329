/**
 * Worker scripts: the `join` step (kubeadm join with the bootstrap token), its delete (kubeadm
 * reset and clean-up), and the `drain` step a control plane runs for a worker. Pure.
 */
import {
  ADMIN_KUBECONFIG,
  adminKubectlFunctions,
  checkTokenFunction,
  HAKUBE_KUBE_DIR,
  installKubeadmConfigFunction,
  resetNodeFunction,
  runKubeadmFunction,
} from "../node/render";
import { shq } from "../remote/shell";

/** Positions of the secret payloads (stdin) of the worker `join` step. */
export const WORKER_STDIN = { joinConfig: 0, token: 1, endpoint: 2 } as const;
export const WORKER_JOIN_CONFIG_PATH = `${HAKUBE_KUBE_DIR}/kubeadm-join.yaml`;

export function renderWorkerJoinScript(o: { host: string; preview: string }): string {
  return `# worker ${o.host}: kubeadm join (configuration validated; it holds the bootstrap token: stdin only)
${o.preview}
tmpd=$(mktemp -d)
trap 'rm -rf "$tmpd"' EXIT
${installKubeadmConfigFunction()}
install_kubeadm_config ${WORKER_STDIN.joinConfig} ${shq(WORKER_JOIN_CONFIG_PATH)}
if [ -f /etc/kubernetes/kubelet.conf ]; then
  echo "ok: ${o.host} has already joined (/etc/kubernetes/kubelet.conf exists)"
  exit 0
fi
[ ! -e /etc/kubernetes/pki/ca.crt ] || hakube_fail "/etc/kubernetes/pki/ca.crt exists but the node has not joined: leftovers of another cluster? (kubeadm reset -f)"
endpoint=$(printf '%s' "\${HAKUBE_STDIN[${WORKER_STDIN.endpoint}]}" | base64 -d)
token=$(printf '%s' "\${HAKUBE_STDIN[${WORKER_STDIN.token}]}" | base64 -d)
[[ "$endpoint" =~ ^[A-Za-z0-9.:-]+:[0-9]+$ ]] || hakube_fail "joinInfo.endpoint is not <host>:<port>"
[[ "$token" =~ ^[a-z0-9]{6}\\.[a-z0-9]{16}$ ]] || hakube_fail "joinInfo.token is not a bootstrap token"
${checkTokenFunction()}
check_bootstrap_token "$endpoint" "\${token%%.*}"
unset token
${runKubeadmFunction()}
run_kubeadm join ${shq(WORKER_JOIN_CONFIG_PATH)}
kubelet_up() { systemctl is-active --quiet kubelet; }
hakube_retry 120 "kubelet running" kubelet_up
echo "ok: ${o.host} joined the cluster at $endpoint"
`;
}

/**
 * Delete of a worker's `join` step: kubeadm reset and clean-up on the worker. Draining and
 * deleting the Node object is the `drain` step's (on a control plane), which runs first.
 */
export function renderWorkerResetScript(o: { host: string }): string {
  return `# remove worker ${o.host}: kubeadm reset and clean up (its node was drained and deleted from a control plane, when one was reachable)
${resetNodeFunction()}
reset_node
echo "ok: ${o.host} reset"
`;
}

/** The `drain` step, run on a control plane: created once the worker's node is registered; on delete, drains and deletes it. */
export function renderDrainCreateScript(o: { host: string }): string {
  return `# worker ${o.host}: wait until its node is registered (on delete: drain and delete it from here)
${adminKubectlFunctions()}
[ -f ${ADMIN_KUBECONFIG} ] || hakube_fail "${ADMIN_KUBECONFIG} is missing: this host is not an initialised control plane"
registered() { kc get node ${shq(o.host)} >/dev/null 2>&1; }
hakube_retry 300 "node ${o.host} registered" registered
echo "ok: node ${o.host} registered"
`;
}

export function renderDrainDeleteScript(o: { host: string }): string {
  return `# drain and delete node ${o.host} (skipped, with a warning, when the API does not answer)
${adminKubectlFunctions()}
if [ ! -f ${ADMIN_KUBECONFIG} ] || ! api_ready; then
  echo "warning: the API server does not answer from here: node ${o.host} was not drained or deleted (kubectl delete node ${o.host})"
  exit 0
fi
if ! kc get node ${shq(o.host)} >/dev/null 2>&1; then
  echo "ok: node ${o.host} is not in the cluster"
  exit 0
fi
kc drain ${shq(o.host)} --ignore-daemonsets --delete-emptydir-data --force --timeout=300s >/dev/null 2>&1 \\
  && echo "drained ${o.host}" || echo "warning: draining ${o.host} did not finish in 5 minutes; deleting it anyway"
kc delete node ${shq(o.host)} --ignore-not-found --wait=false >/dev/null || hakube_fail "kubectl delete node ${o.host} failed"
echo "ok: node ${o.host} deleted"
`;
}
