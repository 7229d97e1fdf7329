/**
 * Node preparation and the shared node steps, rendered for the supported variants: bash syntax
 * (and shellcheck when installed), the key behaviours in the text (swap, modules, sysctls,
 * pinned/held packages, containerd config validated before use, restarts only on change), and
 * pieces run for real: the fstab edit, version and checksum checks, and the bootstrap-token step
 * against a stand-in kubectl (create, keep, extend, replace, no expiry; twice = no change).
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULTS } from "../components/config/defaults";
import { isKubeletSettableLabel, parseNodePoolConfig, parseTtlSeconds, type ContainerdSpec } from "../components/config/spec";
import {
  aptRepositoryUrl,
  renderContainerdConfig,
  renderContainerdScript,
  renderPackagesScript,
  renderPrepareScript,
  renderSystemScript,
  renderTokenScript,
  type NodeSettings,
} from "../components/node/render";
import { renderScript } from "../components/remote/shell";
import { bashSyntax, shellcheck } from "./harness/fixtures";

const settings = (over: Partial<NodeSettings> = {}, containerd: Partial<ContainerdSpec> = {}): NodeSettings => ({
  version: "1.37.1",
  packages: "pkgs.k8s.io",
  containerd: { ...DEFAULTS.kubernetes.containerd, ...containerd } as ContainerdSpec,
  ...over,
});
const full = (body: string, stdinItems?: number) => renderScript({ host: "n1", step: "test", body, stdinItems });
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "hakube-node-"));
const bash = (script: string, env: Record<string, string> = {}, input = "") =>
  execFileSync("bash", ["-c", script], { encoding: "utf8", input, env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "pipe"] });

const VARIANTS: [string, string][] = [
  ["system 1.37", renderSystemScript({ version: "1.37.1" })],
  ["system 1.34", renderSystemScript({ version: "1.34.3" })],
  ["packages pkgs.k8s.io", renderPackagesScript(settings())],
  ["packages aptRepository", renderPackagesScript(settings({ aptRepository: "https://mirror.example.com/k8s/v1.37/deb" }))],
  ["packages preinstalled", renderPackagesScript(settings({ packages: "preinstalled" }))],
  ["containerd upstream", renderContainerdScript(settings())],
  ["containerd distribution", renderContainerdScript(settings({}, { source: "distribution" }))],
  ["containerd preinstalled", renderContainerdScript(settings({}, { source: "preinstalled" }))],
  ["containerd 1.35", renderContainerdScript(settings({ version: "1.35.9" }))],
  ["prepare (upstream containerd, pkgs.k8s.io)", renderPrepareScript(settings())],
  ["prepare (preinstalled)", renderPrepareScript(settings({ packages: "preinstalled" }, { source: "preinstalled" }))],
  ["token 24h", renderTokenScript({ joiner: "w1", ttlSeconds: 86400 })],
  ["token 0", renderTokenScript({ joiner: "w1", ttlSeconds: 0 })],
];

describe("syntax", () => {
  for (const [what, body] of VARIANTS) {
    it(`${what}: bash -n${shellcheck("true") === undefined ? "" : " and shellcheck"}`, () => {
      const s = full(body, what.startsWith("token") ? 1 : undefined);
      expect(bashSyntax(s)).toBe("");
      const sc = shellcheck(s);
      if (sc !== undefined) expect(sc).toBe("");
    });
  }
});

describe("prepare step", () => {
  it("holds the system, packages and containerd parts verbatim, in that order, each in its own subshell named in failures", () => {
    const k = settings();
    const s = renderPrepareScript(k);
    const parts = [renderSystemScript(k), renderPackagesScript(k), renderContainerdScript(k)];
    let at = 0;
    for (const [i, label] of ["system", "packages", "containerd"].entries()) {
      const open = s.indexOf(`# ---- part: ${label}\n(\n`, at);
      expect(open, label).toBeGreaterThanOrEqual(at);
      const body = s.indexOf(parts[i].trimEnd(), open);
      expect(body, label).toBeGreaterThan(open);
      expect(s.slice(open, body)).toContain(`HAKUBE_STEP="$HAKUBE_STEP (${label})"`);
      at = body + parts[i].trimEnd().length;
      expect(s.slice(at, at + 3)).toBe("\n)\n");
    }
    expect(s.trimEnd().split("\n").pop()).toBe('echo "ok: node prepared for Kubernetes 1.37.1"');
  });
});

describe("system step", () => {
  const s = renderSystemScript({ version: "1.37.1" });
  it("swap off now and at boot: swapoff -a, fstab entries commented out, swap.target masked", () => {
    expect(s).toContain("swapoff -a");
    expect(s).toContain('"# disabled by hakube (Kubernetes node): " $0');
    expect(s).toContain("| hakube_put /etc/fstab 0644 root root");
    expect(s).toContain("systemctl mask swap.target");
  });
  it("overlay and br_netfilter loaded now (modprobe) and at boot (modules-load.d)", () => {
    expect(s).toMatch(/hakube_put \/etc\/modules-load\.d\/hakube-kubernetes\.conf 0644 root root <<'HAKUBE_FILE'\n#[^\n]*\noverlay\nbr_netfilter\nHAKUBE_FILE/);
    expect(s).toContain('modprobe "$m"');
  });
  it("the sysctls kubeadm wants, persisted and applied only when the live values differ", () => {
    for (const k of ["net.ipv4.ip_forward = 1", "net.bridge.bridge-nf-call-iptables = 1", "net.bridge.bridge-nf-call-ip6tables = 1"]) expect(s).toContain(k);
    expect(s).toMatch(/if ! sysctls_ok; then\n\s+sysctl -q -p \/etc\/sysctl\.d\/99-zz-hakube-kubernetes\.conf/);
  });
  it("cgroup v2 is required from Kubernetes 1.35 (kubelet failCgroupV1), a warning before", () => {
    expect(s).toMatch(/!= cgroup2fs \]; then\n\s+hakube_fail "cgroup v2 is required/);
    expect(renderSystemScript({ version: "1.34.3" })).toContain('|| echo "warning: cgroup v1 is deprecated');
  });
  it("the fstab edit comments out active swap lines only, and changes nothing the second time", () => {
    const lines = s.split("\n");
    const i = lines.findIndex((l) => l.startsWith("if awk '$1 !~ /^#/ && $3 == \"swap\""));
    const snippet = lines.slice(i, i + 3).join("\n").replaceAll("/etc/fstab", '"$FSTAB"').replace(/\| hakube_put "\$FSTAB" 0644 root root/, '> "$FSTAB.new" && mv "$FSTAB.new" "$FSTAB"');
    const dir = tmp();
    const fstab = path.join(dir, "fstab");
    const original = ["# /etc/fstab", "UUID=1 / ext4 defaults 0 1", "/swapfile none swap sw 0 0", "# /dev/sdb1 none swap sw 0 0", "UUID=2 none swap sw,pri=5 0 0", ""].join("\n");
    fs.writeFileSync(fstab, original);
    bash(snippet, { FSTAB: fstab });
    const once = fs.readFileSync(fstab, "utf8");
    expect(once.split("\n")).toEqual([
      "# /etc/fstab",
      "UUID=1 / ext4 defaults 0 1",
      "# disabled by hakube (Kubernetes node): /swapfile none swap sw 0 0",
      "# /dev/sdb1 none swap sw 0 0",
      "# disabled by hakube (Kubernetes node): UUID=2 none swap sw,pri=5 0 0",
      "",
    ]);
    const before = fs.statSync(fstab).mtimeMs;
    bash(snippet, { FSTAB: fstab });
    expect(fs.readFileSync(fstab, "utf8")).toBe(once);
    expect(fs.statSync(fstab).mtimeMs).toBe(before);
  });
});

describe("packages step", () => {
  it("pkgs.k8s.io repository of the configured minor, signed-by keyring; kubeadm/kubelet/kubectl pinned to the version and held", () => {
    const s = renderPackagesScript(settings());
    expect(s).toContain("deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.37/deb/ /");
    expect(s).toContain('"${repo}Release.key"');
    expect(s).toContain("gpg --batch --yes --dearmor");
    expect(s).toContain('index($3, v) == 1 { print $3; exit }');
    expect(s).toContain('pins+=("$p=$v")');
    expect(s).toContain('apt-mark hold "$p"');
    expect(s).toContain("for p in kubelet kubeadm kubectl; do");
    expect(s).toContain('[ "$v" = v1.37.1 ] || bad+=("kubeadm ${v:-missing}")');
    expect(s).toContain("is an upgrade (kubeadm upgrade), which node preparation does not do");
    expect(s).toContain("hakube_apt_install kubernetes-cni cri-tools");
  });
  it("kubernetes.aptRepository replaces the repository", () => {
    expect(aptRepositoryUrl({ version: "1.37.1", aptRepository: "https://mirror.example.com/k8s/v1.37/deb" })).toBe("https://mirror.example.com/k8s/v1.37/deb/");
    expect(aptRepositoryUrl({ version: "1.36.4" })).toBe("https://pkgs.k8s.io/core:/stable:/v1.36/deb/");
    expect(renderPackagesScript(settings({ aptRepository: "https://mirror.example.com/k8s/v1.37/deb" }))).toContain("] https://mirror.example.com/k8s/v1.37/deb/ /");
  });
  it("packages: preinstalled only verifies (no apt)", () => {
    const s = renderPackagesScript(settings({ packages: "preinstalled" }));
    expect(s).not.toMatch(/apt-get|apt-mark|sources\.list/);
    expect(s).toContain("check_kube_versions");
  });
});

describe("containerd step", () => {
  it("config version 3 with SystemdCgroup = true and the pause image pinned as sandbox", () => {
    const c = renderContainerdConfig("registry.k8s.io/pause:3.10.2");
    expect(c).toContain("version = 3");
    expect(c).toContain("[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\n  SystemdCgroup = true");
    expect(c).toContain("[plugins.'io.containerd.cri.v1.images'.pinned_images]\n  sandbox = 'registry.k8s.io/pause:3.10.2'");
  });
  it("the pause image comes from kubeadm itself, with the pinned default (3.10.2 for 1.37, 3.10.1 for 1.35)", () => {
    expect(renderContainerdScript(settings())).toContain("kubeadm config images list --kubernetes-version v1.37.1");
    expect(renderContainerdScript(settings())).toContain("pause=registry.k8s.io/pause:3.10.2");
    expect(renderContainerdScript(settings({ version: "1.35.9" }))).toContain("pause=registry.k8s.io/pause:3.10.1");
  });
  it("validated with the real binary before it is swapped in; restarted only when config, unit or binaries changed", () => {
    const s = renderContainerdScript(settings());
    const dump = s.indexOf('containerd --config "$tmpd/config.toml" config dump');
    const put = s.indexOf('hakube_put /etc/containerd/config.toml 0644 root root < "$tmpd/config.toml"');
    expect(dump).toBeGreaterThan(0);
    expect(put).toBeGreaterThan(dump);
    expect(s).toMatch(/if hakube_changed_any \/etc\/containerd\/config\.toml \/etc\/systemd\/system\/containerd\.service \/usr\/local\/bin\/containerd [^\n]*; then\n\s+systemctl restart containerd/);
    expect(s.match(/systemctl restart containerd/g)).toHaveLength(1);
  });
  it("upstream: pinned containerd and runc releases, checksums verified against the published sums", () => {
    const s = renderContainerdScript(settings());
    expect(s).toContain("want=2.3.4");
    expect(s).toContain('base="https://github.com/containerd/containerd/releases/download/v$want"');
    expect(s).toContain('tarball="containerd-$want-linux-$arch.tar.gz"');
    expect(s).toContain('fetch "$base/$tarball.sha256sum"');
    expect(s).toContain("runc_want=1.5.1");
    expect(s).toContain('fetch "$base/runc.sha256sum"');
    expect(s).toContain("hakube_put /etc/systemd/system/containerd.service 0644 root root");
    expect(s).toContain("package ${conflicts[*]} is installed and brings its own containerd");
  });
  it("distribution: refuses a package too old for the Kubernetes release before installing it", () => {
    const s = renderContainerdScript(settings({}, { source: "distribution" }));
    expect(s).toContain("apt-cache policy containerd");
    expect(s).toContain("is too old for Kubernetes 1.37.1 (needs 2.2.0+); set hakube:kubernetes.containerd.source: upstream");
    expect(s.indexOf("containerd_supported \"$(norm_version \"$candidate\")\"")).toBeLessThan(s.indexOf("hakube_apt_install containerd"));
    expect(s).not.toContain("github.com");
  });
  it("preinstalled: verified, not installed", () => {
    const s = renderContainerdScript(settings({}, { source: "preinstalled" }));
    expect(s).not.toMatch(/apt-get|hakube_apt_install|github\.com/);
    expect(s).toContain('command -v containerd >/dev/null 2>&1 || hakube_fail "containerd is not installed (source: preinstalled)"');
  });

  const fn = (script: string, name: string) => {
    const m = new RegExp(`^${name}\\(\\) \\{[\\s\\S]*?^\\}$|^${name}\\(\\) \\{[^\\n]*\\}$`, "m").exec(script);
    if (!m) throw new Error(`no function ${name}`);
    return m[0];
  };
  it("version checks: Debian's containerd is refused, Ubuntu's -updates 2.2.1 and upstream 2.3.4 pass (Kubernetes 1.37)", () => {
    const s = renderContainerdScript(settings());
    const prelude = [fn(s, "containerd_supported"), fn(s, "norm_version")].join("\n");
    const ok = (v: string) => {
      try {
        bash(`${prelude}\ncontainerd_supported "$(norm_version "$V")"`, { V: v });
        return true;
      } catch {
        return false;
      }
    };
    expect(ok("1.6.20~ds1-1+deb12u3")).toBe(false);
    expect(ok("1.7.24~ds1-6")).toBe(false);
    expect(ok("2.1.4~ds2-8")).toBe(false);
    expect(ok("2.2.1-0ubuntu1~24.04.3")).toBe(true);
    expect(ok("v2.3.4")).toBe(true);
    expect(ok("1:2.2.0-1")).toBe(true);
    expect(ok("")).toBe(false);
    // 1.35: 2.1.5+ within 2.1, or 2.2.0+
    const s35 = renderContainerdScript(settings({ version: "1.35.9" }));
    const p35 = [fn(s35, "containerd_supported"), fn(s35, "norm_version")].join("\n");
    const ok35 = (v: string) => {
      try {
        bash(`${p35}\ncontainerd_supported "$(norm_version "$V")"`, { V: v });
        return true;
      } catch {
        return false;
      }
    };
    expect([ok35("2.1.4"), ok35("2.1.5"), ok35("2.2.0"), ok35("2.0.9")]).toEqual([false, true, true, false]);
  });
  it("checksum check: accepts the published sum (both sha256sum formats), refuses anything else", () => {
    const s = renderContainerdScript(settings());
    const verify = fn(s, "verify");
    const dir = tmp();
    const file = path.join(dir, "runc.amd64");
    fs.writeFileSync(file, "binary");
    const sum = execFileSync("sha256sum", [file], { encoding: "utf8" }).split(" ")[0];
    const run = (sums: string) => {
      fs.writeFileSync(path.join(dir, "sums"), sums);
      try {
        bash(`hakube_fail() { echo "FAIL $*"; exit 1; }\n${verify}\nverify "$F" "$S" runc.amd64`, { F: file, S: path.join(dir, "sums") });
        return "ok";
      } catch (e) {
        return String((e as { stdout?: string }).stdout);
      }
    };
    expect(run(`${"0".repeat(64)}  runc.arm64\n${sum}  runc.amd64\n`)).toBe("ok");
    expect(run(`${sum} *runc.amd64\n`)).toBe("ok");
    expect(run(`${sum}\n`)).toBe("ok");
    expect(run(`${"f".repeat(64)}  runc.amd64\n`)).toMatch(/^FAIL checksum mismatch for runc.amd64/);
  });
});

describe("bootstrap-token step against a stand-in kubectl", () => {
  const FAKE = path.resolve(__dirname, "fixtures/fake-kubectl");
  const TOKEN = "abcdef.0123456789abcdef";
  const setup = () => {
    const dir = tmp();
    fs.mkdirSync(path.join(dir, "bin"));
    fs.copyFileSync(FAKE, path.join(dir, "bin", "kubectl"));
    fs.chmodSync(path.join(dir, "bin", "kubectl"), 0o755);
    fs.writeFileSync(path.join(dir, "admin.conf"), "");
    return dir;
  };
  const runToken = (dir: string, ttlSeconds: number, token = TOKEN, env: Record<string, string> = {}) => {
    const script = renderScript({ host: "w1", step: "token (on cp1)", body: renderTokenScript({ joiner: "w1", ttlSeconds }), stdinItems: 1 })
      .replaceAll("/etc/kubernetes/admin.conf", path.join(dir, "admin.conf"))
      .replace("PATH=/usr/local/sbin", `PATH=${path.join(dir, "bin")}:/usr/local/sbin`)
      .replace(/hakube_retry (300|120) /g, "hakube_retry 5 ");
    return bash(script, { FAKE_KUBE: dir, ...env }, Buffer.from(token).toString("base64") + "\n");
  };
  const secret = (dir: string, key: string) => {
    const f = path.join(dir, "secrets", "bootstrap-token-abcdef", key);
    return fs.existsSync(f) ? fs.readFileSync(f, "utf8") : undefined;
  };
  const isoIn = (seconds: number) => new Date(Math.floor(Date.now() / 1000 + seconds) * 1000).toISOString().replace(/\.\d+Z$/, "Z");

  it("creates the token Secret kubeadm's way, with a 24h expiry; a second run changes nothing", () => {
    const dir = setup();
    expect(runToken(dir, 86400)).toMatch(/created bootstrap token abcdef/);
    expect(secret(dir, ".type")).toBe("bootstrap.kubernetes.io/token");
    expect(secret(dir, "token-id")).toBe("abcdef");
    expect(secret(dir, "token-secret")).toBe("0123456789abcdef");
    expect(secret(dir, "usage-bootstrap-authentication")).toBe("true");
    expect(secret(dir, "usage-bootstrap-signing")).toBe("true");
    expect(secret(dir, "auth-extra-groups")).toBe("system:bootstrappers:kubeadm:default-node-token");
    const exp = Date.parse(secret(dir, "expiration")!);
    expect(Math.abs(exp - Date.now() - 86400_000)).toBeLessThan(120_000);
    const before = secret(dir, "expiration");
    expect(runToken(dir, 86400)).toMatch(/bootstrap token abcdef valid until/);
    expect(secret(dir, "expiration")).toBe(before);
    const log = fs.readFileSync(path.join(dir, "log"), "utf8");
    expect(log).not.toContain("0123456789abcdef");
  });
  it("extends a token with less than half its TTL left (or already expired)", () => {
    const dir = setup();
    runToken(dir, 86400);
    fs.writeFileSync(path.join(dir, "secrets/bootstrap-token-abcdef/expiration"), isoIn(3600));
    expect(runToken(dir, 86400)).toMatch(/now valid until/);
    expect(Date.parse(secret(dir, "expiration")!) - Date.now()).toBeGreaterThan(86000_000);
    fs.writeFileSync(path.join(dir, "secrets/bootstrap-token-abcdef/expiration"), "2020-01-01T00:00:00Z");
    expect(runToken(dir, 86400)).toMatch(/now valid until/);
  });
  it("replaces a different token that has the same id", () => {
    const dir = setup();
    runToken(dir, 86400);
    fs.writeFileSync(path.join(dir, "secrets/bootstrap-token-abcdef/token-secret"), "zzzzzzzzzzzzzzzz");
    expect(runToken(dir, 86400)).toMatch(/deleted a different token[\s\S]*created bootstrap token/);
    expect(secret(dir, "token-secret")).toBe("0123456789abcdef");
  });
  it("two token steps creating the token at once: the one that loses accepts the other's (same token)", () => {
    const dir = setup();
    expect(runToken(dir, 86400, TOKEN, { FAKE_RACE: "1" })).toMatch(/was created concurrently/);
  });
    it("TTL 0: no expiry (and an existing expiry is removed)", () => {
    const dir = setup();
    runToken(dir, 0);
    expect(secret(dir, "expiration")).toBeUndefined();
    const d2 = setup();
    runToken(d2, 86400);
    expect(runToken(d2, 0)).toMatch(/no longer expires/);
    expect(secret(d2, "expiration")).toBeUndefined();
    expect(runToken(d2, 0)).toMatch(/does not expire/);
  });
  it("a malformed token fails with the host and step named", () => {
    const dir = setup();
    expect(() => runToken(dir, 86400, "not-a-token")).toThrow(/hakube: w1: token \(on cp1\): the bootstrap token on stdin is malformed/);
  });
});

describe("config helpers", () => {
  it("labels the kubelet may set at registration", () => {
    for (const ok of ["example.com/gpu", "tier", "topology.kubernetes.io/zone", "node.kubernetes.io/pool", "kubelet.kubernetes.io/x", "sub.node.kubernetes.io/y"]) expect(isKubeletSettableLabel(ok), ok).toBe(true);
    for (const bad of ["node-role.kubernetes.io/worker", "kubernetes.io/role", "example.k8s.io/x", "node-restriction.kubernetes.io/x"]) expect(isKubeletSettableLabel(bad), bad).toBe(false);
  });
  it("token TTLs", () => {
    expect(parseTtlSeconds("24h")).toBe(86400);
    expect(parseTtlSeconds("1h30m")).toBe(5400);
    expect(parseTtlSeconds("90m")).toBe(5400);
    expect(parseTtlSeconds("0")).toBe(0);
    for (const bad of ["", "1d", "0h", "24", "h"]) expect(parseTtlSeconds(bad), bad).toBeUndefined();
  });
  it("parseNodePoolConfig: another program's workers and node settings, with the same rules", () => {
    const { hosts, kubernetes } = parseNodePoolConfig({
      namespace: "workerPool",
      hosts: [{ name: "gpu1", address: "10.0.0.51", roles: ["worker"], taints: ["nvidia.com/gpu=true:NoSchedule"] }],
      kubernetes: { containerd: { source: "distribution" } },
      sshUser: "ops",
    });
    expect(hosts[0]).toEqual({ name: "gpu1", address: "10.0.0.51", internalAddress: "10.0.0.51", roles: ["worker"], user: "ops", port: 22, labels: {}, taints: [{ key: "nvidia.com/gpu", value: "true", effect: "NoSchedule" }] });
    expect(kubernetes).toMatchObject({ version: "1.37.1", packages: "pkgs.k8s.io", bootstrapTokenTtl: "24h", containerd: { source: "distribution" } });
    expect(() =>
      parseNodePoolConfig({ namespace: "workerPool", hosts: [{ name: "x", address: "a.example.com", roles: ["controlplane"], labels: { "node-role.kubernetes.io/worker": "" } }], kubernetes: { version: "1.29.0" } }),
    ).toThrow(/workerPool:hosts\[0\]\.roles: role "controlplane" is not allowed here[\s\S]*workerPool:hosts\[0\]\.internalAddress: is required[\s\S]*workerPool:kubernetes\.version: 1\.29\.0 is too old/);
  });
});
