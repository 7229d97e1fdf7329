/**
 * The lab as an air-gapped site (issue 10): the toolchain built from the Go module proxy, served by
 * the gateway's file mirror and registry, consumed from a lab host the way the program's normal
 * paths consume pkgs.k8s.io, GitHub releases and container registries — with nothing from outside.
 *
 * One host (test/lab/site-stack.yaml) is enough: it installs kubeadm from the signed apt mirror,
 * verifies every release archive against its checksum file, and pulls every image through
 * containerd's CRI from the registry, checking the digests the toolchain recorded.
 * Needs root and the built toolchain (test/all.sh builds it; `npm run lab -- toolchain`).
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as os from "node:os";
import { CP_STDIN } from "../../components/controlplane/render";
import { WORKER_STDIN } from "../../components/workers/render";
import { command, stdinItems } from "../harness/fixtures";
import { readStackFile, runProgram, TEST_SSH_KEY } from "../harness/program";
import type { SshTarget } from "../harness/ssh";
import { connections, onHost, onHostOk } from "./labctl";

const HERE = __dirname;
const STACK = path.join(HERE, "site-stack.yaml");
const MANIFEST = JSON.parse(fs.readFileSync(path.join(HERE, "toolchain", "manifest.json"), "utf8"));
const TOOLCHAIN = execFileSync("bash", [path.join(HERE, "toolchain", "build.sh"), "--path"], { encoding: "utf8" }).trim();
const MIRROR: string = MANIFEST.lab.mirror;
const REGISTRY: string = MANIFEST.lab.registry;
const KV: string = MANIFEST.kubernetes.version;
const MINOR = KV.split(".").slice(0, 2).join(".");
const APT_REPO = `${MIRROR}/pkgs.k8s.io/core:/stable:/v${MINOR}/deb/`;
const KEEP = process.env.HAKUBE_LAB_KEEP === "1";
// containerd's content store opens files with O_SYNC, which nspawn's suppress-sync filter refuses
// (EINVAL: "create tmp file … startedat.tmp: invalid argument"): container hosts keep real syncs
const env = { ...process.env, HAKUBE_LAB_STACK: STACK, HAKUBE_LAB_SUPPRESS_SYNC: "0" };

interface Image { name: string; ref: string; digest: string }
const images = (): Image[] =>
  fs.readFileSync(path.join(TOOLCHAIN, "images", "images.txt"), "utf8").trim().split("\n").map((l) => {
    const [name, ref, digest] = l.split(" ");
    return { name, ref, digest };
  });

function labSh(args: string[], timeoutMs = 1_800_000): string {
  return execFileSync("bash", [path.join(HERE, "lab.sh"), ...args], { env, encoding: "utf8", timeout: timeoutMs, stdio: ["ignore", "pipe", "inherit"] });
}

describe("the lab as an air-gapped site", () => {
  let host: SshTarget;

  beforeAll(() => {
    if (process.getuid?.() !== 0) throw new Error("the site test needs root (it boots a lab host)");
    // the toolchain must be there: test/all.sh builds it first; a missing one is a failure, not a skip
    execFileSync("bash", [path.join(HERE, "toolchain", "build.sh")], { stdio: "inherit", timeout: 75 * 60_000 });
    labSh(["up", "--fresh"]);
    host = connections().targets.node1;
  }, 80 * 60_000);

  afterAll(() => {
    if (!KEEP) labSh(["down"], 300_000);
  }, 300_000);

  it("the machine has the Pulumi CLI of the pinned SDK, built from pkg/v3", () => {
    const v = execFileSync(path.join(TOOLCHAIN, "bin", "pulumi"), ["version"], { encoding: "utf8", env: { ...process.env, PULUMI_SKIP_UPDATE_CHECK: "1" } }).trim();
    const sdk = JSON.parse(fs.readFileSync(path.join(HERE, "..", "..", "package.json"), "utf8")).dependencies["@pulumi/pulumi"];
    expect(v).toBe(`v${sdk}`);
  });

  it("Kubernetes binaries carry the real version stamp", () => {
    const kubeadm = execFileSync(path.join(TOOLCHAIN, "bin", "kubeadm"), ["version", "-o", "short"], { encoding: "utf8" }).trim();
    const kubectl = execFileSync(path.join(TOOLCHAIN, "bin", "kubectl"), ["version", "--client", "-o", "json"], { encoding: "utf8" });
    expect(kubeadm).toBe(`v${KV}`);
    expect(JSON.parse(kubectl).clientVersion.gitVersion).toBe(`v${KV}`);
    for (const b of ["kubelet", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"]) {
      expect(execFileSync(path.join(TOOLCHAIN, "bin", b), ["--version"], { encoding: "utf8" }).trim()).toBe(`Kubernetes v${KV}`);
    }
  });

  it("the real kubeadm accepts every kubeadm document the program renders for the dev stack, and names its images", async () => {
    const run = await runProgram({ ...readStackFile("Pulumi.dev.yaml"), sshPrivateKey: TEST_SSH_KEY });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hakube-kubeadm-"));
    const kubeadm = path.join(TOOLCHAIN, "bin", "kubeadm");
    const docs: [string, string][] = [
      ["init cp1", stdinItems(command(run.harness, "controlplane-kubeadm-cp1"))[CP_STDIN.initConfig]],
      ["join cp2", stdinItems(command(run.harness, "controlplane-kubeadm-cp2"))[CP_STDIN.joinConfig]],
      ["join worker1", stdinItems(command(run.harness, "workers-join-worker1"))[WORKER_STDIN.joinConfig]],
    ];
    try {
      for (const [what, text] of docs) {
        expect(text, what).toContain("kubeadm.k8s.io/v1beta4");
        const f = path.join(dir, `${what.replace(/ /g, "-")}.yaml`);
        fs.writeFileSync(f, text, { mode: 0o600 });
        const out = execFileSync(kubeadm, ["config", "validate", "--config", f], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
        expect(out, what).toMatch(/ok/);
      }
      // the images kubeadm will pull for this configuration are exactly the ones the site serves
      const list = execFileSync(kubeadm, ["config", "images", "list", "--config", path.join(dir, "init-cp1.yaml")], { encoding: "utf8" }).trim().split("\n");
      const served = new Set(images().map((i) => i.ref));
      expect(list.length).toBeGreaterThanOrEqual(6);
      for (const ref of list) expect(served, `kubeadm wants ${ref}`).toContain(ref);
      // and a broken document is refused (the check can fail)
      const bad = path.join(dir, "bad.yaml");
      fs.writeFileSync(bad, docs[0][1].replace("kind: ClusterConfiguration", "kind: ClusterConfiguration\nnoSuchField: 1"));
      expect(() => execFileSync(kubeadm, ["config", "validate", "--config", bad], { stdio: "pipe" })).toThrow();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("apt installs kubeadm, kubelet, kubectl, cri-tools and kubernetes-cni from the signed mirror, and refuses it unsigned", async () => {
    const out = await onHostOk(host, `set -e
      export DEBIAN_FRONTEND=noninteractive
      mkdir -p /etc/apt/keyrings
      # without the key: apt must refuse the repository
      echo 'deb ${APT_REPO} /' > /etc/apt/sources.list.d/k8s-unsigned.list
      if apt-get -q -o Dir::Etc::sourcelist=/etc/apt/sources.list.d/k8s-unsigned.list -o Dir::Etc::sourceparts=- update 2>&1 | grep -q 'NO_PUBKEY\\|not signed\\|is not signed'; then echo UNSIGNED-REFUSED; fi
      rm -f /etc/apt/sources.list.d/k8s-unsigned.list
      # (an ASCII-armored key in signed-by: apt >= 2.4 reads .asc files; the bare host has no gpg)
      curl -fsSL -o /etc/apt/keyrings/kubernetes-apt-keyring.asc '${APT_REPO}Release.key'
      echo 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.asc] ${APT_REPO} /' > /etc/apt/sources.list.d/kubernetes.list
      apt-get -q -o Dir::Etc::sourcelist=/etc/apt/sources.list.d/kubernetes.list -o Dir::Etc::sourceparts=- update >/dev/null
      apt-cache madison kubeadm
      apt-get -q update >/dev/null   # with Debian's lists too: kubelet depends on iptables, ethtool, …
      apt-get -q -y --no-install-recommends install kubeadm=${KV}-* kubelet=${KV}-* kubectl=${KV}-* >/dev/null
      kubeadm version -o short
      dpkg-query -W -f='\${Package} \${Version}\\n' kubeadm kubelet kubectl cri-tools kubernetes-cni
      ls /opt/cni/bin
      systemctl cat kubelet.service | grep -c 'KUBELET_KUBEADM_ARGS'`, { timeoutMs: 600_000 });
    expect(out).toContain("UNSIGNED-REFUSED");
    expect(out).toContain(`v${KV}\n`);
    expect(out).toMatch(new RegExp(`^kubeadm ${KV.replace(/\./g, "\\.")}-${MANIFEST.kubernetes.debRevision}$`, "m"));
    expect(out).toMatch(new RegExp(`^cri-tools ${MANIFEST.criTools.version.replace(/\./g, "\\.")}-`, "m"));
    expect(out).toMatch(new RegExp(`^kubernetes-cni ${MANIFEST.cniPlugins.version.replace(/\./g, "\\.")}-`, "m"));
    for (const p of MANIFEST.cniPlugins.plugins) expect(out).toMatch(new RegExp(`^${p}$`, "m"));
    expect(out.trim().split("\n").at(-1)).toBe("1"); // the kubeadm drop-in is active for kubelet.service
  });

  it("release archives verify against their checksum files in the upstream layout; a corrupted one does not", async () => {
    const gh = `${MIRROR}/github.com`;
    const { etcd, containerd, runc, cniPlugins, criTools, arch } = MANIFEST;
    const out = await onHostOk(host, `set -e
      d=$(mktemp -d); cd "$d"
      get() { curl -fsSL -O "$1"; }
      get ${gh}/etcd-io/etcd/releases/download/v${etcd.version}/etcd-v${etcd.version}-linux-${arch}.tar.gz
      get ${gh}/etcd-io/etcd/releases/download/v${etcd.version}/SHA256SUMS
      sha256sum -c SHA256SUMS
      get ${gh}/containerd/containerd/releases/download/v${containerd.version}/containerd-${containerd.version}-linux-${arch}.tar.gz
      get ${gh}/containerd/containerd/releases/download/v${containerd.version}/containerd-${containerd.version}-linux-${arch}.tar.gz.sha256sum
      sha256sum -c containerd-${containerd.version}-linux-${arch}.tar.gz.sha256sum
      get ${gh}/opencontainers/runc/releases/download/v${runc.version}/runc.${arch}
      get ${gh}/opencontainers/runc/releases/download/v${runc.version}/runc.sha256sum
      sha256sum -c runc.sha256sum
      get ${gh}/containernetworking/plugins/releases/download/v${cniPlugins.version}/cni-plugins-linux-${arch}-v${cniPlugins.version}.tgz
      get ${gh}/containernetworking/plugins/releases/download/v${cniPlugins.version}/cni-plugins-linux-${arch}-v${cniPlugins.version}.tgz.sha256
      sha256sum -c cni-plugins-linux-${arch}-v${cniPlugins.version}.tgz.sha256
      get ${gh}/kubernetes-sigs/cri-tools/releases/download/v${criTools.version}/crictl-v${criTools.version}-linux-${arch}.tar.gz
      tar -tzf etcd-v${etcd.version}-linux-${arch}.tar.gz
      tar -tzf containerd-${containerd.version}-linux-${arch}.tar.gz
      chmod +x runc.${arch}; ./runc.${arch} --version | head -1
      # one flipped byte must fail verification
      printf 'x' | dd of=runc.${arch} bs=1 seek=1000 conv=notrunc 2>/dev/null
      if sha256sum -c runc.sha256sum >/dev/null 2>&1; then echo CORRUPT-ACCEPTED; else echo CORRUPT-REFUSED; fi
      rm -rf "$d"`, { timeoutMs: 300_000 });
    for (const f of [`etcd-v${etcd.version}-linux-${arch}.tar.gz: OK`, `containerd-${containerd.version}-linux-${arch}.tar.gz: OK`, `runc.${arch}: OK`, `cni-plugins-linux-${arch}-v${cniPlugins.version}.tgz: OK`]) expect(out).toContain(f);
    expect(out).toContain(`etcd-v${etcd.version}-linux-${arch}/etcd\n`);
    expect(out).toContain("bin/containerd-shim-runc-v2");
    expect(out).toContain(`runc version ${runc.version}`);
    expect(out).toContain("CORRUPT-REFUSED");
  });

  it("containerd pulls every image of kubeadm's list (and the test image) from the registry, digests as built", async () => {
    const { containerd, runc, arch } = MANIFEST;
    const gh = `${MIRROR}/github.com`;
    // containerd from the mirror's archive, the registry declared as a plain-HTTP host (hosts.toml)
    await onHostOk(host, `set -e
      d=$(mktemp -d); cd "$d"
      curl -fsSL ${gh}/containerd/containerd/releases/download/v${containerd.version}/containerd-${containerd.version}-linux-${arch}.tar.gz | tar -xz -C /usr/local
      curl -fsSL -o /usr/local/sbin/runc ${gh}/opencontainers/runc/releases/download/v${runc.version}/runc.${arch}; chmod 0755 /usr/local/sbin/runc
      curl -fsSL ${gh}/kubernetes-sigs/cri-tools/releases/download/v${MANIFEST.criTools.version}/crictl-v${MANIFEST.criTools.version}-linux-${arch}.tar.gz | tar -xz -C /usr/local/bin
      mkdir -p /etc/containerd/certs.d/${REGISTRY}
      printf 'server = "http://${REGISTRY}"\\n\\n[host."http://${REGISTRY}"]\\n  capabilities = ["pull", "resolve"]\\n' > /etc/containerd/certs.d/${REGISTRY}/hosts.toml
      cat > /etc/containerd/config.toml <<'EOF'
version = 3
[plugins.'io.containerd.cri.v1.images'.registry]
  config_path = '/etc/containerd/certs.d'
EOF
      systemd-run --unit=hk-site-containerd --collect /usr/local/bin/containerd
      for i in $(seq 100); do [ -S /run/containerd/containerd.sock ] && break; sleep 0.1; done
      crictl --runtime-endpoint unix:///run/containerd/containerd.sock version`, { timeoutMs: 300_000 });
    const list = images();
    expect(list.length).toBeGreaterThanOrEqual(8);
    for (const img of list) {
      const r = await onHost(host, `crictl --runtime-endpoint unix:///run/containerd/containerd.sock pull ${img.ref} >/dev/null && crictl --runtime-endpoint unix:///run/containerd/containerd.sock inspecti -o json ${img.ref}`, { timeoutMs: 300_000 });
      expect(r.exitCode, `crictl pull ${img.ref}: ${r.stderr}`).toBe(0);
      const repoDigests: string[] = JSON.parse(r.stdout).status.repoDigests;
      expect(repoDigests).toContain(`${img.ref.replace(/:[^:/]+$/, "")}@${img.digest}`);
    }
    // an image the registry does not hold is an error (the pulls above were not served from elsewhere)
    const missing = await onHost(host, `crictl --runtime-endpoint unix:///run/containerd/containerd.sock pull ${REGISTRY}/k8s/no-such-image:v0`);
    expect(missing.exitCode).not.toBe(0);
    await onHost(host, "systemctl stop hk-site-containerd");
  });
});
