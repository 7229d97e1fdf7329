/**
 * Node preparation (control planes and workers) and the node-side steps every Kubernetes node
 * shares: script bodies for the remote steps. Pure: no Pulumi import.
 *
 * One `prepare` step per host (`renderPrepareScript`), in three parts, in order:
 *   system     — cgroup v2, base packages, overlay/br_netfilter, sysctls, swap off (now and at boot)
 *   packages   — kubeadm/kubelet/kubectl from pkgs.k8s.io, pinned and held (or only verified)
 *   containerd — containerd (upstream release, distribution package or preinstalled) with
 *                SystemdCgroup = true and kubeadm's pause image as the pinned sandbox image
 * The packages part comes before containerd so the sandbox image can be asked from the
 * installed kubeadm (`kubeadm config images list`). Each part runs in its own subshell
 * (`renderParts`), so it behaves as the step it used to be.
 */
import * as semver from "semver";
import { stringify } from "yaml";
import { CGROUP_V1_FAIL_BY_DEFAULT_MINOR, CONTAINERD_CERTS_DIR, containerdRanges, DEFAULT_IMAGE_REPOSITORY, defaultPauseTag, describeRanges, type VersionRange } from "../config/defaults";
import type { ContainerdSpec, KubernetesSpec, RegistryEndpoint, RegistrySpec } from "../config/spec";
import { downloadFunctions, pinnedSha256 } from "../remote/download";
import { putFile, renderParts, shq, shqAll } from "../remote/shell";

/** What node preparation needs from `hakube:kubernetes`. */
export type NodeSettings = Pick<KubernetesSpec, "version" | "packages" | "aptRepository" | "containerd" | "imageRepository" | "allowCgroupV1">;

export const CONTAINERD_SOCKET = "/run/containerd/containerd.sock";
/** kubeadm's own default CRI socket for containerd. */
export const CRI_SOCKET = "unix:///var/run/containerd/containerd.sock";
export const KUBE_PACKAGES = ["kubelet", "kubeadm", "kubectl"] as const;
export const KUBERNETES_APT_KEYRING = "/etc/apt/keyrings/kubernetes-apt-keyring.gpg";
export const KUBERNETES_APT_LIST = "/etc/apt/sources.list.d/kubernetes.list";
export const SYSCTL_FILE = "/etc/sysctl.d/99-zz-hakube-kubernetes.conf";
export const MODULES_FILE = "/etc/modules-load.d/hakube-kubernetes.conf";
/** Where hakube keeps the kubeadm configuration it hands to kubeadm (0700). */
export const HAKUBE_KUBE_DIR = "/etc/kubernetes/hakube";
/** kubeadm logs (they hold the join command): 0700. */
export const HAKUBE_LOG_DIR = "/var/log/hakube";

export const SYSCTLS: [string, string][] = [
  ["net.ipv4.ip_forward", "1"],
  ["net.bridge.bridge-nf-call-iptables", "1"],
  ["net.bridge.bridge-nf-call-ip6tables", "1"],
];
export const KERNEL_MODULES = ["overlay", "br_netfilter"];
/** Tools kubeadm's preflight requires or warns about, and what the steps themselves use. */
export const BASE_PACKAGES = ["ca-certificates", "conntrack", "curl", "ethtool", "gpg", "iproute2", "iptables", "kmod", "procps", "socat"];

/** `1.37.1` → `1.37` */
export function kubernetesMinor(version: string): string {
  return `${semver.major(version)}.${semver.minor(version)}`;
}

/** The pkgs.k8s.io repository of the configured minor, or `kubernetes.aptRepository` (with a trailing slash). */
export function aptRepositoryUrl(k: Pick<KubernetesSpec, "version" | "aptRepository">): string {
  const url = k.aptRepository ?? `https://pkgs.k8s.io/core:/stable:/v${kubernetesMinor(k.version)}/deb/`;
  return url.endsWith("/") ? url : `${url}/`;
}

/* ------------------------------------------------------------------ system */

export function renderSystemScript(k: Pick<KubernetesSpec, "version"> & { allowCgroupV1?: boolean }): string {
  const minor = semver.minor(k.version);
  const cgroupCheck =
    minor >= CGROUP_V1_FAIL_BY_DEFAULT_MINOR && !k.allowCgroupV1
      ? `if [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" != cgroup2fs ]; then
  hakube_fail "cgroup v2 is required: the kubelet of Kubernetes ${kubernetesMinor(k.version)} refuses to start on cgroup v1 (boot with systemd.unified_cgroup_hierarchy=1, or set hakube:kubernetes.allowCgroupV1: true while the release still allows it)"
fi`
      : k.allowCgroupV1
        ? `[ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ] || echo "warning: cgroup v1 host, allowed by hakube:kubernetes.allowCgroupV1 (kubelet failCgroupV1: false): unsupported by the kubelet since 1.${CGROUP_V1_FAIL_BY_DEFAULT_MINOR}; move to cgroup v2"`
        : `[ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ] || echo "warning: cgroup v1 is deprecated for the kubelet; use cgroup v2"`;
  const sysctlFile = SYSCTLS.map(([k, v]) => `${k} = ${v}`).join("\n");
  return `# node preparation: cgroups, base packages, kernel modules, sysctls, swap
${cgroupCheck}
[ -s /etc/machine-id ] || hakube_fail "/etc/machine-id is empty: the kubelet needs a unique machine id (systemd-machine-id-setup)"

hakube_apt_install ${shqAll(BASE_PACKAGES)}

# kernel modules: loaded now and at boot
${putFile({ path: MODULES_FILE, mode: "0644", content: `# written by hakube: needed by containerd (overlay) and by bridged pod traffic (br_netfilter)\n${KERNEL_MODULES.join("\n")}\n` })}
module_loaded() {
  case "$1" in
    overlay) grep -qw overlay /proc/filesystems ;;
    br_netfilter) [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] ;;
    *) [ -d "/sys/module/$1" ] ;;
  esac
}
for m in ${shqAll(KERNEL_MODULES)}; do
  if ! module_loaded "$m"; then
    modprobe "$m" || hakube_fail "cannot load kernel module $m"
    echo "loaded kernel module $m"
  fi
  module_loaded "$m" || hakube_fail "kernel module $m is not active after modprobe"
done

# sysctls kubeadm's preflight and the CNI plugins need (the file sorts after 99-sysctl.conf, so it wins at boot)
${putFile({ path: SYSCTL_FILE, mode: "0644", content: `# written by hakube\n${sysctlFile}\n` })}
sysctls_ok() {
  local kv
  for kv in ${shqAll(SYSCTLS.map(([k, v]) => `${k}=${v}`))}; do
    [ "$(sysctl -n "\${kv%%=*}" 2>/dev/null)" = "\${kv#*=}" ] || return 1
  done
}
if ! sysctls_ok; then
  sysctl -q -p ${shq(SYSCTL_FILE)} >/dev/null || hakube_fail "sysctl -p ${SYSCTL_FILE} failed"
  echo "applied ${SYSCTL_FILE}"
fi
sysctls_ok || hakube_fail "sysctls ${SYSCTLS.map(([k, v]) => `${k}=${v}`).join(" ")} are not in effect after sysctl -p"

# swap: off now, and at boot (the kubelet refuses to start with swap unless configured for it)
if [ -n "$(swapon --show=NAME --noheadings 2>/dev/null)" ]; then
  swapoff -a || hakube_fail "swapoff -a failed"
  echo "turned swap off"
fi
[ -z "$(swapon --show=NAME --noheadings 2>/dev/null)" ] || hakube_fail "swap is still on after swapoff -a: $(swapon --show=NAME --noheadings | paste -sd' ')"
if awk '$1 !~ /^#/ && $3 == "swap" { found = 1 } END { exit !found }' /etc/fstab; then
  awk '$1 !~ /^#/ && $3 == "swap" { print "# disabled by hakube (Kubernetes node): " $0; next } { print }' /etc/fstab | hakube_put /etc/fstab 0644 root root
fi
# swap units that do not come from fstab (GPT auto-discovery, zram) are pulled in by swap.target
if [ "$(systemctl is-enabled swap.target 2>/dev/null || true)" != masked ]; then
  systemctl mask swap.target >/dev/null 2>&1 || hakube_fail "systemctl mask swap.target failed"
  echo "masked swap.target"
fi
echo "ok: node system prepared"
`;
}

/* ------------------------------------------------------------------ packages */

/** Bash that checks the installed kubeadm, kubelet and kubectl are exactly `version`. */
function versionCheck(version: string): string {
  return `check_kube_versions() {
  local bad=() v
  v=$(kubeadm version -o short 2>/dev/null || true)
  [ "$v" = ${shq(`v${version}`)} ] || bad+=("kubeadm \${v:-missing}")
  v=$(kubelet --version 2>/dev/null | awk '{ print $2 }' || true)
  [ "$v" = ${shq(`v${version}`)} ] || bad+=("kubelet \${v:-missing}")
  v=$(kubectl version --client 2>/dev/null | awk '/^Client Version:/ { print $3 }' || true)
  [ "$v" = ${shq(`v${version}`)} ] || bad+=("kubectl \${v:-missing}")
  [ "\${#bad[@]}" -eq 0 ] || hakube_fail "Kubernetes ${version} wanted, found: \${bad[*]}"
}`;
}

export function renderPackagesScript(k: NodeSettings): string {
  const version = k.version;
  if (k.packages === "preinstalled") {
    return `# Kubernetes packages: preinstalled (hakube:kubernetes.packages) — verified, not installed
${versionCheck(version)}
check_kube_versions
command -v crictl >/dev/null 2>&1 || echo "warning: crictl (cri-tools) is missing: kubeadm works without it, troubleshooting does not"
[ -d /opt/cni/bin ] || echo "warning: /opt/cni/bin is missing: most CNI plugins need the standard plugins (kubernetes-cni)"
if [ "$(systemctl is-enabled kubelet 2>/dev/null || true)" != enabled ]; then
  systemctl enable kubelet >/dev/null 2>&1 || hakube_fail "systemctl enable kubelet failed"
  echo "enabled kubelet"
fi
echo "ok: kubeadm, kubelet, kubectl v${version}"
`;
  }
  const repo = aptRepositoryUrl(k);
  const list = `# written by hakube: Kubernetes ${kubernetesMinor(version)} packages\ndeb [signed-by=${KUBERNETES_APT_KEYRING}] ${repo} /\n`;
  return `# Kubernetes packages from ${repo}: kubeadm, kubelet, kubectl ${version}, pinned and held
version=${shq(version)}
repo=${shq(repo)}
tmpd=$(mktemp -d)
trap 'rm -rf "$tmpd"' EXIT

# repository signing key (dearmored; the same key gives the same file) and the source list
hakube_dir /etc/apt/keyrings 0755 root root
curl -fsSL --retry 3 --max-time 60 -o "$tmpd/Release.key" "\${repo}Release.key" || hakube_fail "cannot download \${repo}Release.key"
gpg --batch --yes --dearmor -o "$tmpd/keyring.gpg" "$tmpd/Release.key" 2>/dev/null || hakube_fail "\${repo}Release.key is not an OpenPGP public key"
hakube_put ${shq(KUBERNETES_APT_KEYRING)} 0644 root root < "$tmpd/keyring.gpg"
${putFile({ path: KUBERNETES_APT_LIST, mode: "0644", content: list })}

installed_version() { dpkg-query -W -f='\${db:Status-Status} \${Version}' "$1" 2>/dev/null | awk '$1 == "installed" { print $2 }' || true; }
wanted() { case "$(installed_version "$1")" in "$version"-*) return 0 ;; *) return 1 ;; esac; }
missing=()
for p in ${KUBE_PACKAGES.join(" ")}; do wanted "$p" || missing+=("$p"); done
if [ "\${#missing[@]}" -gt 0 ]; then
  current=$(installed_version kubelet)
  if [ -n "$current" ] && [ -f /etc/kubernetes/kubelet.conf ] && ! wanted kubelet; then
    hakube_fail "kubelet $current is installed and this node is already in a cluster: moving it to $version is an upgrade (kubeadm upgrade), which node preparation does not do"
  fi
  export DEBIAN_FRONTEND=noninteractive
  # only this repository's index: the distribution's lists are not fetched again (the system part
  # installed the kubelet's dependencies from them), so no round trip to the distribution's mirror
  if hakube_changed || ! apt-cache madison kubeadm 2>/dev/null | awk -v v="$version-" 'index($3, v) == 1 { f = 1 } END { exit !f }'; then
    apt-get -q -o DPkg::Lock::Timeout=300 -o Dir::Etc::sourcelist=${shq(KUBERNETES_APT_LIST)} -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0 update >/dev/null </dev/null \\
      || hakube_fail "apt-get update of ${KUBERNETES_APT_LIST} (\${repo}) failed"
  fi
  pins=()
  for p in ${KUBE_PACKAGES.join(" ")}; do
    v=$(apt-cache madison "$p" 2>/dev/null | awk -v v="$version-" 'index($3, v) == 1 { print $3; exit }' || true)
    [ -n "$v" ] || hakube_fail "$p $version is not in $repo (available: $(apt-cache madison "$p" 2>/dev/null | awk '{ print $3 }' | head -n 5 | paste -sd' '))"
    pins+=("$p=$v")
  done
  apt-mark unhold ${KUBE_PACKAGES.join(" ")} >/dev/null 2>&1 || true
  apt-get -q -y -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confold install --no-install-recommends --allow-downgrades --allow-change-held-packages "\${pins[@]}" >/dev/null </dev/null \\
    || hakube_fail "apt-get install \${pins[*]} failed"
  echo "installed \${pins[*]}"
fi
# the CNI reference plugins (/opt/cni/bin) and crictl come from the same repository
hakube_apt_install kubernetes-cni cri-tools
held=$(apt-mark showhold)
for p in ${KUBE_PACKAGES.join(" ")}; do
  if ! grep -qx "$p" <<<"$held"; then apt-mark hold "$p" >/dev/null; echo "held $p"; fi
done
${versionCheck(version)}
check_kube_versions
if [ "$(systemctl is-enabled kubelet 2>/dev/null || true)" != enabled ]; then
  systemctl enable kubelet >/dev/null 2>&1 || hakube_fail "systemctl enable kubelet failed"
  echo "enabled kubelet"
fi
echo "ok: kubeadm, kubelet, kubectl v${version} (held)"
`;
}

/* ------------------------------------------------------------------ containerd */

export const CONTAINERD_CONFIG = "/etc/containerd/config.toml";
export const CONTAINERD_UNIT = "/etc/systemd/system/containerd.service";
/** Replaced in the script by the pause image kubeadm names. */
export const PAUSE_PLACEHOLDER = "@HAKUBE_PAUSE_IMAGE@";

/**
 * containerd 2.x configuration (version 3): runc through systemd cgroups, kubeadm's pause image
 * pinned, registry hosts from certs.d; `restrictOomScoreAdj` for nodes that are themselves
 * containers (LXD, systemd-nspawn, …) whose capability set lacks CAP_SYS_RESOURCE.
 */
export function renderContainerdConfig(pauseImage: string, o: { restrictOomScoreAdj?: boolean } = {}): string {
  const runtime = o.restrictOomScoreAdj
    ? `
[plugins.'io.containerd.cri.v1.runtime']
  # this node cannot lower an oom_score_adj (no CAP_SYS_RESOURCE): clamp requests to its own
  restrict_oom_score_adj = true
`
    : "";
  return `# written by hakube (node preparation); local changes are overwritten
version = 3
${runtime}
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = '${pauseImage}'

[plugins.'io.containerd.cri.v1.images'.registry]
  config_path = '${CONTAINERD_CERTS_DIR}'

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = 'io.containerd.runc.v2'

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  SystemdCgroup = true
`;
}

/** The first line of every hosts.toml hakube writes: how a later run recognises (and removes) its own. */
export const HOSTS_TOML_MARKER = "# written by hakube (kubernetes.containerd.registries); local changes are overwritten";

/** A file of one registry namespace's directory under certs.d. */
export interface RegistryFile {
  path: string;
  content: string;
}

/** TOML basic string (JSON's escapes are TOML's for the characters a validated URL or path can hold). */
const tomlString = (s: string) => JSON.stringify(s);

/**
 * One registry namespace's files for containerd (docs/hosts.md of containerd 2.x): its `hosts.toml`
 * (mirrors as `[host."<url>"]` in order, tried before `server`) and a CA file per endpoint that has
 * `ca`, referenced by absolute path. Pure; the namespace is validated by the config.
 */
export function renderRegistryFiles(namespace: string, r: RegistrySpec): RegistryFile[] {
  const dir = `${CONTAINERD_CERTS_DIR}/${namespace}`;
  const files: RegistryFile[] = [];
  const caFile = (name: string, e: RegistryEndpoint) => {
    if (!e.ca) return undefined;
    const path = `${dir}/${name}`;
    files.push({ path, content: e.ca.replace(/\r\n/g, "\n").trim() + "\n" });
    return path;
  };
  const lines = [HOSTS_TOML_MARKER];
  if (r.server) {
    lines.push(`server = ${tomlString(r.server.url)}`);
    const ca = caFile("server-ca.crt", r.server);
    if (ca) lines.push(`ca = ${tomlString(ca)}`);
  }
  r.mirrors.forEach((m, i) => {
    lines.push("", `[host.${tomlString(m.url)}]`, `  capabilities = [${m.capabilities.map(tomlString).join(", ")}]`);
    const ca = caFile(`mirror-${i}-ca.crt`, m);
    if (ca) lines.push(`  ca = ${tomlString(ca)}`);
  });
  return [{ path: `${dir}/hosts.toml`, content: lines.join("\n") + "\n" }, ...files];
}

/** Bash: install every configured registry namespace's files; remove hosts.toml files (and their CA files) hakube wrote for namespaces no longer configured. */
function registriesScript(registries: Record<string, RegistrySpec>): string {
  const names = Object.keys(registries).sort();
  const install = names.flatMap((ns) => [
    `hakube_dir ${shq(`${CONTAINERD_CERTS_DIR}/${ns}`)} 0755 root root`,
    ...renderRegistryFiles(ns, registries[ns]).map((f) => putFile({ path: f.path, mode: "0644", content: f.content })),
  ]);
  return `# registry hosts (containerd reads ${CONTAINERD_CERTS_DIR}/<registry>/hosts.toml at each pull: no restart needed)
hakube_dir ${shq(CONTAINERD_CERTS_DIR)} 0755 root root
${install.join("\n")}
for f in ${shq(CONTAINERD_CERTS_DIR)}/*/hosts.toml; do
  [ -f "$f" ] || continue
  d=\${f%/hosts.toml}
  case " ${names.join(" ")} " in *" \${d##*/} "*) continue ;; esac
  if [[ "$(head -n 1 "$f")" == ${shq(HOSTS_TOML_MARKER)} ]]; then
    hakube_remove "$f" "$d"/server-ca.crt "$d"/mirror-*-ca.crt
    rmdir "$d" 2>/dev/null || true
  fi
done`;
}

/** systemd unit for an upstream containerd in /usr/local/bin (as containerd's own containerd.service). */
export function renderContainerdUnit(): string {
  return `# written by hakube: containerd from the upstream release in /usr/local/bin
[Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After=network.target dbus.service local-fs.target

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/local/bin/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
`;
}

export function renderCrictlConfig(): string {
  return stringify({ "runtime-endpoint": `unix://${CONTAINERD_SOCKET}`, "image-endpoint": `unix://${CONTAINERD_SOCKET}`, timeout: 10 });
}

/** Bash: `containerd_supported VERSION` from the support ranges (dpkg --compare-versions). */
function supportedFunction(ranges: VersionRange[]): string {
  const tests = ranges.map((r) =>
    r.below
      ? `{ dpkg --compare-versions "$1" ge ${r.min} && dpkg --compare-versions "$1" lt ${r.below}; }`
      : `dpkg --compare-versions "$1" ge ${r.min}`,
  );
  return `containerd_supported() { [ -n "$1" ] && { ${tests.join(" || ")}; }; }
# "v2.3.4", "1:2.2.1-0ubuntu1~24.04.3", "1.6.20~ds1-1" → the upstream version
norm_version() { printf '%s' "$1" | sed -E 's/^v//; s/^[0-9]+://; s/[~+-].*$//'; }
containerd_version() { norm_version "$(containerd --version 2>/dev/null | awk '{ print $3 }' || true)"; }`;
}

/**
 * Bash: fetch a release file into FILE and verify it — against the pinned digest (`$sum`, from the
 * config) or, without one, against the published sums file `sumsUrl` (upstream layout).
 */
function fetchVerified(o: { url: string; file: string; name: string; sumsUrl: string; keyPath: string }): string {
  return `hakube_fetch "${o.url}" "${o.file}"
if [ -z "$sum" ]; then
  hakube_fetch "${o.sumsUrl}" "${o.file}.sums"
  sum=$(hakube_published_sha256 "${o.file}.sums" "${o.name}")
  hakube_check_sha256 "${o.file}" "$sum" "${o.url}" "${o.sumsUrl}"
else
  hakube_check_sha256 "${o.file}" "$sum" "${o.url}" "${o.keyPath}.$arch"
fi`;
}

function upstreamInstall(c: ContainerdSpec): string {
  const pinned = c.sha256 || c.runcSha256;
  return `# containerd ${c.version} and runc ${c.runcVersion}: upstream releases (sha256 checked against ${pinned ? "the digests pinned in the config, or the published sums" : "the published sums"})
conflicts=()
for p in containerd containerd.io; do
  dpkg-query -W -f='\${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed && conflicts+=("$p")
done
[ "\${#conflicts[@]}" -eq 0 ] || hakube_fail "package \${conflicts[*]} is installed and brings its own containerd: remove it, or set hakube:kubernetes.containerd.source to distribution or preinstalled"
${downloadFunctions()}
arch=$(hakube_arch)
case "$arch" in amd64|arm64|ppc64le|s390x) ;; *) hakube_fail "no upstream containerd for architecture $arch" ;; esac
want=${shq(c.version)}
if [ "$(containerd_version)" != "$want" ] || [ ! -x /usr/local/bin/containerd-shim-runc-v2 ]; then
  url=$(hakube_url ${shq(c.downloadUrl)} "$want" "$arch")
  tarball=\${url##*/}
${pinnedSha256("sum", c.sha256, "kubernetes.containerd.sha256").replace(/^/gm, "  ")}
${fetchVerified({ url: "$url", file: "$tmpd/containerd.tar.gz", name: "$tarball", sumsUrl: "$url.sha256sum", keyPath: "kubernetes.containerd.sha256" }).replace(/^/gm, "  ")}
  mkdir "$tmpd/x"
  tar -xzf "$tmpd/containerd.tar.gz" -C "$tmpd/x" --no-same-owner || hakube_fail "cannot unpack $url"
  [ -x "$tmpd/x/bin/containerd" ] || hakube_fail "$url has no bin/containerd"
  for b in "$tmpd"/x/bin/*; do hakube_put "/usr/local/bin/$(basename "$b")" 0755 root root < "$b"; done
fi
runc_want=${shq(c.runcVersion)}
if [ "$(/usr/local/sbin/runc --version 2>/dev/null | awk 'NR == 1 { print $3 }')" != "$runc_want" ]; then
  url=$(hakube_url ${shq(c.runcDownloadUrl)} "$runc_want" "$arch")
  name=\${url##*/}
${pinnedSha256("sum", c.runcSha256, "kubernetes.containerd.runcSha256").replace(/^/gm, "  ")}
${fetchVerified({ url: "$url", file: "$tmpd/runc", name: "$name", sumsUrl: "\${url%/*}/runc.sha256sum", keyPath: "kubernetes.containerd.runcSha256" }).replace(/^/gm, "  ")}
  chmod 0755 "$tmpd/runc"
  got=$("$tmpd/runc" --version 2>/dev/null | awk 'NR == 1 { print $3 }' || true)
  [ "$got" = "$runc_want" ] || hakube_fail "the runc in $url reports version \${got:-none}, expected $runc_want"
  hakube_put /usr/local/sbin/runc 0755 root root < "$tmpd/runc"
fi
${putFile({ path: CONTAINERD_UNIT, mode: "0644", content: renderContainerdUnit() })}
if hakube_changed_any ${shq(CONTAINERD_UNIT)}; then systemctl daemon-reload; fi
[ "$(containerd_version)" = "$want" ] || hakube_fail "containerd $want wanted, $(containerd_version) installed"`;
}

function distributionInstall(kubernetesVersion: string, ranges: VersionRange[]): string {
  return `# containerd: the distribution's package, if it is new enough for Kubernetes ${kubernetesVersion} (${describeRanges(ranges)})
if ! dpkg-query -W -f='\${db:Status-Status}' containerd 2>/dev/null | grep -qx installed; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get -q -o DPkg::Lock::Timeout=300 update >/dev/null </dev/null || hakube_fail "apt-get update failed"
  candidate=$(apt-cache policy containerd 2>/dev/null | awk '/Candidate:/ { print $2 }' || true)
  containerd_supported "$(norm_version "$candidate")" \\
    || hakube_fail "the distribution's containerd \${candidate:-(none)} is too old for Kubernetes ${kubernetesVersion} (needs ${describeRanges(ranges)}); set hakube:kubernetes.containerd.source: upstream"
fi
hakube_apt_install containerd`;
}

export function renderContainerdScript(k: NodeSettings): string {
  const c = k.containerd;
  const ranges = containerdRanges(k.version);
  const repo = k.imageRepository ?? DEFAULT_IMAGE_REPOSITORY;
  const pause = `${repo}/pause:${defaultPauseTag(k.version)}`;
  const repoFlag = k.imageRepository ? ` --image-repository ${shq(k.imageRepository)}` : "";
  const install =
    c.source === "upstream"
      ? upstreamInstall(c)
      : c.source === "distribution"
        ? distributionInstall(k.version, ranges)
        : `# containerd: preinstalled (hakube:kubernetes.containerd.source) — verified, not installed
command -v containerd >/dev/null 2>&1 || hakube_fail "containerd is not installed (source: preinstalled)"
systemctl cat containerd.service >/dev/null 2>&1 || hakube_fail "containerd.service is not a systemd unit on this host"`;
  return `# container runtime: containerd (${c.source}) with SystemdCgroup = true and kubeadm's pause image
tmpd=$(mktemp -d)
trap 'rm -rf "$tmpd"' EXIT
${supportedFunction(ranges)}
${install}
v=$(containerd_version)
containerd_supported "$v" || hakube_fail "containerd \${v:-(unknown)} is not supported with Kubernetes ${k.version} (needs ${describeRanges(ranges)})"

# the sandbox image kubeadm ${k.version} expects under ${repo} (the pinned default when kubeadm cannot tell)
pause=$(kubeadm config images list --kubernetes-version ${shq(`v${k.version}`)}${repoFlag} 2>/dev/null | grep -m1 '/pause:' || true)
[ -n "$pause" ] || pause=${shq(pause)}
[[ "$pause" =~ ^[a-z0-9./:_-]+$ ]] || hakube_fail "unexpected pause image name: $pause"
[[ "$pause" == ${shq(`${repo}/pause:`)}* ]] || hakube_fail "kubeadm names the pause image $pause, not one under ${repo}: the sandbox image would not match kubeadm's"
${registriesScript(k.containerd.registries ?? {})}
cat > "$tmpd/config.toml" <<'HAKUBE_CONTAINERD'
${renderContainerdConfig(PAUSE_PLACEHOLDER, { restrictOomScoreAdj: k.containerd.restrictOomScoreAdj }).replace(/\n$/, "")}
HAKUBE_CONTAINERD
config=$(cat "$tmpd/config.toml")
printf '%s\\n' "\${config//${PAUSE_PLACEHOLDER}/$pause}" > "$tmpd/config.toml"
# validate with the real binary before swapping it in
containerd --config "$tmpd/config.toml" config dump > "$tmpd/dump" 2> "$tmpd/dump.err" || hakube_fail "containerd rejects the new config: $(tail -n 5 "$tmpd/dump.err")"
grep -q 'SystemdCgroup = true' "$tmpd/dump" || hakube_fail "containerd config dump does not show SystemdCgroup = true"
grep -qF "$pause" "$tmpd/dump" || hakube_fail "containerd config dump does not show the sandbox image $pause"
grep -qF ${shq(CONTAINERD_CERTS_DIR)} "$tmpd/dump" || hakube_fail "containerd config dump does not show the registry config_path ${CONTAINERD_CERTS_DIR}"
hakube_dir /etc/containerd 0755 root root
hakube_put ${shq(CONTAINERD_CONFIG)} 0644 root root < "$tmpd/config.toml"
${putFile({ path: "/etc/crictl.yaml", mode: "0644", content: renderCrictlConfig() })}

if [ "$(systemctl is-enabled containerd 2>/dev/null || true)" != enabled ]; then
  systemctl enable containerd >/dev/null 2>&1 || hakube_fail "systemctl enable containerd failed"
  echo "enabled containerd"
fi
if hakube_changed_any ${shqAll([CONTAINERD_CONFIG, CONTAINERD_UNIT, "/usr/local/bin/containerd", "/usr/local/bin/containerd-shim-runc-v2", "/usr/local/sbin/runc"])}; then
  systemctl restart containerd || hakube_fail "containerd did not restart: $(journalctl -u containerd -n 5 --no-pager 2>/dev/null | tail -n 5)"
  echo "restarted containerd"
elif ! systemctl is-active --quiet containerd; then
  systemctl start containerd || hakube_fail "containerd did not start: $(journalctl -u containerd -n 5 --no-pager 2>/dev/null | tail -n 5)"
  echo "started containerd"
fi
cri_ready() {
  if command -v crictl >/dev/null 2>&1; then crictl --runtime-endpoint ${shq(`unix://${CONTAINERD_SOCKET}`)} info >/dev/null 2>&1
  else [ -S ${shq(CONTAINERD_SOCKET)} ]; fi
}
hakube_retry 60 "containerd CRI on ${CONTAINERD_SOCKET}" cri_ready
echo "ok: containerd $v, sandbox $pause, SystemdCgroup = true, registries: ${Object.keys(k.containerd.registries ?? {}).sort().join(" ") || "defaults"}"
`;
}

/* ------------------------------------------------------------------ the prepare step */

/** The `prepare` step: system → packages → containerd, each part in its own subshell. */
export function renderPrepareScript(k: NodeSettings): string {
  return `# node preparation: system, Kubernetes packages, container runtime
${renderParts([
  { label: "system", body: renderSystemScript(k) },
  { label: "packages", body: renderPackagesScript(k) },
  { label: "containerd", body: renderContainerdScript(k) },
])}echo "ok: node prepared for Kubernetes ${k.version}"
`;
}

/* ------------------------------------------------------------------ shared by control planes and workers */

/** Bash: `install_kubeadm_config INDEX PATH` — secret payload INDEX is a kubeadm config; validate it with kubeadm, then install it 0600. */
export function installKubeadmConfigFunction(): string {
  return `hakube_dir ${shq(HAKUBE_KUBE_DIR)} 0700 root root
install_kubeadm_config() {
  local i=$1 path=$2 tmp out
  tmp=$(mktemp ${shq(`${HAKUBE_KUBE_DIR}/.candidate.XXXXXX`)})
  printf '%s' "\${HAKUBE_STDIN[$i]}" | base64 -d > "$tmp"
  if ! out=$(kubeadm config validate --config "$tmp" 2>&1); then
    rm -f "$tmp"
    hakube_fail "kubeadm config validate rejects $(basename "$path"): $out"
  fi
  hakube_put "$path" 0600 root root < "$tmp"
  rm -f "$tmp"
}`;
}

/**
 * Bash: `check_bootstrap_token ENDPOINT ID` — before a join, make sure the cluster knows the
 * bootstrap token: the bootstrap signer signs the public cluster-info ConfigMap with every valid
 * token (key `jws-kubeconfig-<id>`). The read is unauthenticated and unverified (it only makes a
 * clear message); kubeadm's discovery verifies the CA against the pinned hash.
 */
export function checkTokenFunction(): string {
  return `check_bootstrap_token() {
  local endpoint=$1 id=$2 code
  code=$(curl -ks --max-time 15 -o "$tmpd/cluster-info.json" -w '%{http_code}' "https://$endpoint/api/v1/namespaces/kube-public/configmaps/cluster-info" || true)
  case "$code" in
    200) grep -q "\\"jws-kubeconfig-$id\\"" "$tmpd/cluster-info.json" \\
           || hakube_fail "bootstrap token $id is not valid on the cluster at $endpoint (expired or deleted): refresh it from a control plane (docs/kubernetes.md, \\"Bootstrap token\\")" ;;
    000) hakube_fail "cannot reach the API server at $endpoint" ;;
    *) echo "warning: cluster-info at $endpoint answered HTTP $code; leaving the token check to kubeadm" ;;
  esac
}`;
}

/**
 * How hakube resets a node. hakube's etcd is always external, so kubeadm's `remove-etcd-member`
 * phase is skipped: with no etcd in the kubeadm config it falls back to the default data dir
 * `/var/lib/etcd`, spends 60 s looking for stacked etcd pods, and then **empties that directory**
 * — the data of an external member on the same host (`etcd.deployment: systemd` allows an etcd
 * host to be a control plane or worker too). Read in kubeadm v1.37.2's
 * cmd/kubeadm/app/cmd/phases/reset/removeetcdmember.go; measured: 62 s of each control plane's reset.
 */
export const KUBEADM_RESET = "kubeadm reset -f --skip-phases=remove-etcd-member";

/**
 * Bash: `run_kubeadm MODE CONFIG` — `kubeadm init|join --config CONFIG` with its output in a 0600
 * log (it prints the join command). On failure the node is reset (the next run starts clean) and
 * the step fails with the end of the log.
 */
export function runKubeadmFunction(): string {
  return `run_kubeadm() {
  local mode=$1 config=$2 log
  hakube_dir ${shq(HAKUBE_LOG_DIR)} 0700 root root
  log=${shq(HAKUBE_LOG_DIR)}/kubeadm-$mode.log
  if ! kubeadm "$mode" --config "$config" > "$log" 2>&1; then
    local tail_out
    tail_out=$(grep -v -e '--token' -e '--discovery-token' "$log" | tail -n 15 || true)
    ${KUBEADM_RESET} >> "$log" 2>&1 || true
    hakube_fail "kubeadm $mode failed; the node was reset (kubeadm reset), full log in $log: $tail_out"
  fi
  chmod 0600 "$log"
  echo "kubeadm $mode done (log: $log)"
}`;
}

/** Bash: `reset_node` — kubeadm reset and the cleanup kubeadm leaves to the operator (CNI config and links, Kubernetes iptables/nftables rules). */
export function resetNodeFunction(): string {
  return `reset_node() {
  if command -v kubeadm >/dev/null 2>&1; then
    ${KUBEADM_RESET} --cleanup-tmp-dir >/dev/null 2>&1 || echo "warning: kubeadm reset -f reported errors"
    echo "kubeadm reset done"
  fi
  hakube_remove /etc/cni/net.d/10-calico.conflist /etc/cni/net.d/calico-kubeconfig /etc/cni/net.d/10-flannel.conflist /etc/cni/net.d/05-cilium.conflist /etc/cni/net.d/05-cilium.conf
  local l t
  for l in cni0 flannel.1 vxlan.calico cilium_host cilium_net cilium_vxlan kube-ipvs0; do
    if ip link show "$l" >/dev/null 2>&1; then ip link delete "$l" 2>/dev/null && echo "deleted link $l" || echo "warning: cannot delete link $l"; fi
  done
  for t in iptables ip6tables; do
    command -v "$t-save" >/dev/null 2>&1 || continue
    if "$t-save" 2>/dev/null | grep -qE 'KUBE-|cali[-:]|CILIUM|FLANNEL'; then
      "$t-save" | grep -vE 'KUBE-|cali[-:]|CILIUM|FLANNEL' | "$t-restore" && echo "removed the Kubernetes $t rules" || echo "warning: $t-restore failed"
    fi
  done
  if command -v nft >/dev/null 2>&1; then
    for t in "ip kube-proxy" "ip6 kube-proxy"; do
      nft list table $t >/dev/null 2>&1 && nft delete table $t && echo "deleted nftables table $t"
    done
  fi
  rm -rf ${shq(HAKUBE_KUBE_DIR)} ${shq(HAKUBE_LOG_DIR)}
}`;
}

export const ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf";

/** Bash: `kc ARGS...` — kubectl with the control plane's admin kubeconfig; `api_ready` for hakube_retry. */
export function adminKubectlFunctions(): string {
  return `kc() { kubectl --kubeconfig ${ADMIN_KUBECONFIG} --request-timeout=30s "$@"; }
api_ready() { kc get --raw /readyz >/dev/null 2>&1; }`;
}

/**
 * The bootstrap-token step, run on a control plane (with admin.conf) before a node joins: the
 * token (secret payload 0) exists in kube-system and stays valid for at least half its TTL —
 * created when missing (expired tokens are deleted by the token cleaner), its expiry pushed to
 * now + TTL when less than half is left; TTL 0 makes it non-expiring. Only the token id is
 * printed. Then it waits until the bootstrap signer signed cluster-info with it.
 */
export function renderTokenScript(o: { joiner: string; ttlSeconds: number }): string {
  const ttl = o.ttlSeconds;
  return `# bootstrap token for ${o.joiner}: exists and is valid (TTL ${ttl === 0 ? "none: never expires" : `${ttl}s, refreshed when less than half is left`})
${adminKubectlFunctions()}
[ -f ${ADMIN_KUBECONFIG} ] || hakube_fail "${ADMIN_KUBECONFIG} is missing: this host is not an initialised control plane"
tmpd=$(mktemp -d)
trap 'rm -rf "$tmpd"' EXIT
token=$(printf '%s' "\${HAKUBE_STDIN[0]}" | base64 -d)
[[ "$token" =~ ^[a-z0-9]{6}\\.[a-z0-9]{16}$ ]] || hakube_fail "the bootstrap token on stdin is malformed"
id=\${token%%.*}
printf '%s' "\${token#*.}" > "$tmpd/token-secret"
ttl=${ttl}
secret="bootstrap-token-$id"
hakube_retry 300 "the API server (kubectl --kubeconfig ${ADMIN_KUBECONFIG})" api_ready
current=$(kc -n kube-system get secret "$secret" --ignore-not-found -o jsonpath='{.data.token-secret}') || hakube_fail "cannot read secret kube-system/$secret"
if [ -n "$current" ] && [ "$(printf '%s' "$current" | base64 -d)" != "\${token#*.}" ]; then
  kc -n kube-system delete secret "$secret" >/dev/null || hakube_fail "cannot delete secret kube-system/$secret"
  echo "deleted a different token that had id $id"
  current=
fi
if [ -z "$current" ]; then
  expiry=() until="no expiry"
  if [ "$ttl" -ne 0 ]; then
    until=$(date -u -d "+$ttl seconds" +%Y-%m-%dT%H:%M:%SZ)
    expiry=(--from-literal=expiration="$until")
  fi
  if kc -n kube-system create secret generic "$secret" --type=bootstrap.kubernetes.io/token \\
    --from-literal=token-id="$id" --from-file=token-secret="$tmpd/token-secret" \\
    --from-literal=usage-bootstrap-authentication=true --from-literal=usage-bootstrap-signing=true \\
    --from-literal=auth-extra-groups=system:bootstrappers:kubeadm:default-node-token \\
    --from-literal=description="hakube bootstrap token" "\${expiry[@]}" >/dev/null 2>"$tmpd/create.err"; then
    echo "created bootstrap token $id (valid until: $until)"
  else
    # another join's token step (they run in parallel) may have created it just now
    again=$(kc -n kube-system get secret "$secret" --ignore-not-found -o jsonpath='{.data.token-secret}') || true
    [ -n "$again" ] && [ "$(printf '%s' "$again" | base64 -d)" = "\${token#*.}" ] \
      || hakube_fail "cannot create secret kube-system/$secret: $(tail -n 3 "$tmpd/create.err")"
    echo "bootstrap token $id was created concurrently"
  fi
else
  expiration=$(kc -n kube-system get secret "$secret" -o jsonpath='{.data.expiration}') || hakube_fail "cannot read secret kube-system/$secret"
  expiration=$(printf '%s' "$expiration" | base64 -d)
  if [ "$ttl" -eq 0 ]; then
    if [ -n "$expiration" ]; then
      kc -n kube-system patch secret "$secret" --type json -p '[{"op":"remove","path":"/data/expiration"}]' >/dev/null || hakube_fail "cannot patch secret kube-system/$secret"
      echo "bootstrap token $id no longer expires"
    else
      echo "bootstrap token $id does not expire"
    fi
  else
    left=-1
    if [ -n "$expiration" ]; then
      exp_s=$(date -u -d "$expiration" +%s 2>/dev/null) || exp_s=0
      left=$(( exp_s - $(date -u +%s) ))
    fi
    if [ -z "$expiration" ] || [ "$left" -lt $((ttl / 2)) ]; then
      new=$(date -u -d "+$ttl seconds" +%Y-%m-%dT%H:%M:%SZ)
      kc -n kube-system patch secret "$secret" --type merge -p "{\\"stringData\\":{\\"expiration\\":\\"$new\\"}}" >/dev/null || hakube_fail "cannot patch secret kube-system/$secret"
      echo "bootstrap token $id now valid until $new"
    else
      echo "bootstrap token $id valid until $expiration"
    fi
  fi
fi
signed() { [ -n "$(kc -n kube-public get configmap cluster-info -o jsonpath="{.data.jws-kubeconfig-$id}" 2>/dev/null)" ]; }
hakube_retry 120 "cluster-info signed with bootstrap token $id (bootstrap signer)" signed
echo "ok: bootstrap token $id ready for ${o.joiner}"
`;
}
