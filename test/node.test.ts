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
  HOSTS_TOML_MARKER,
  renderContainerdConfig,
  renderContainerdScript,
  renderRegistryFiles,
  renderPackagesScript,
  renderPrepareScript,
  renderSystemScript,
  renderTokenScript,
  type NodeSettings,
} from "../components/node/render";
import { downloadFunctions } from "../components/remote/download";
import { renderScript } from "../components/remote/shell";
import { bashSyntax, shellcheck } from "./harness/fixtures";

const settings = (over: Partial<NodeSettings> = {}, containerd: Partial<ContainerdSpec> = {}): NodeSettings => ({
  version: "1.37.2",
  packages: "pkgs.k8s.io",
  allowCgroupV1: false,
  containerd: { ...DEFAULTS.kubernetes.containerd, registries: {}, ...containerd } as ContainerdSpec,
  ...over,
});
const full = (body: string, stdinItems?: number) => renderScript({ host: "n1", step: "test", body, stdinItems });
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "hakube-node-"));
const bash = (script: string, env: Record<string, string> = {}, input = "") =>
  execFileSync("bash", ["-c", script], { encoding: "utf8", input, env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "pipe"] });

/** A test CA certificate's PEM text (any well-formed block does for rendering). */
const CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2Fub3RhcmVhbGNlcnQwCgYIKoZIzj0EAwIwADAeFw0y\n-----END CERTIFICATE-----\n";
/** Node settings of an air-gapped site: a file mirror, pinned digests, an image repository, registry mirrors. */
const AIRGAP = settings(
  { imageRepository: "mirror.lab:5000/k8s" },
  {
    downloadUrl: "http://files.lab/containerd/v{version}/containerd-{version}-linux-{arch}.tar.gz",
    sha256: { amd64: "a".repeat(64), arm64: "b".repeat(64) },
    runcDownloadUrl: "http://files.lab/runc/v{version}/runc.{arch}",
    runcSha256: { amd64: "c".repeat(64) },
    registries: {
      "registry.k8s.io": { mirrors: [{ url: "https://mirror.lab:5000", plainHttp: false, ca: CA_PEM, capabilities: ["pull", "resolve"] }] },
      "10.0.0.5:5000": { server: { url: "http://10.0.0.5:5000", plainHttp: true }, mirrors: [] },
    },
  },
);

const VARIANTS: [string, string][] = [
  ["system 1.37", renderSystemScript({ version: "1.37.2" })],
  ["system 1.37 allowCgroupV1", renderSystemScript({ version: "1.37.2", allowCgroupV1: true })],
  ["system 1.34", renderSystemScript({ version: "1.34.3" })],
  ["packages pkgs.k8s.io", renderPackagesScript(settings())],
  ["packages aptRepository", renderPackagesScript(settings({ aptRepository: "https://mirror.example.com/k8s/v1.37/deb" }))],
  ["packages preinstalled", renderPackagesScript(settings({ packages: "preinstalled" }))],
  ["containerd upstream", renderContainerdScript(settings())],
  ["containerd distribution", renderContainerdScript(settings({}, { source: "distribution" }))],
  ["containerd preinstalled", renderContainerdScript(settings({}, { source: "preinstalled" }))],
  ["containerd 1.35", renderContainerdScript(settings({ version: "1.35.9" }))],
  ["containerd air-gapped", renderContainerdScript(AIRGAP)],
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
    expect(s.trimEnd().split("\n").pop()).toBe(`echo "ok: node prepared for Kubernetes ${k.version}"`);
  });
});

describe("system step", () => {
  const s = renderSystemScript({ version: "1.37.2" });
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
    expect(s).toContain('[ "$v" = v1.37.2 ] || bad+=("kubeadm ${v:-missing}")');
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
  it("restrictOomScoreAdj (nodes that are containers) clamps oom_score_adj in the CRI runtime plugin; off by default", () => {
    expect(renderContainerdConfig("registry.k8s.io/pause:3.10.2")).not.toContain("restrict_oom_score_adj");
    expect(renderContainerdConfig("registry.k8s.io/pause:3.10.2", { restrictOomScoreAdj: true })).toContain("[plugins.'io.containerd.cri.v1.runtime']\n  # this node cannot lower an oom_score_adj (no CAP_SYS_RESOURCE): clamp requests to its own\n  restrict_oom_score_adj = true");
    const on = renderContainerdScript(settings({}, { restrictOomScoreAdj: true }));
    expect(on).toContain("restrict_oom_score_adj = true");
    expect(renderContainerdScript(settings())).not.toContain("restrict_oom_score_adj");
  });
  it("the pause image comes from kubeadm itself, with the pinned default (3.10.2 for 1.37, 3.10.1 for 1.35)", () => {
    expect(renderContainerdScript(settings())).toContain("kubeadm config images list --kubernetes-version v1.37.2 2>/dev/null");
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
    expect(s).toContain("want=2.4.2");
    expect(s).toContain(`url=$(hakube_url 'https://github.com/containerd/containerd/releases/download/v{version}/containerd-{version}-linux-{arch}.tar.gz' "$want" "$arch")`);
    expect(s).toContain('hakube_fetch "$url.sha256sum" "$tmpd/containerd.tar.gz.sums"');
    expect(s).toContain("runc_want=1.5.3");
    expect(s).toContain(`url=$(hakube_url 'https://github.com/opencontainers/runc/releases/download/v{version}/runc.{arch}' "$runc_want" "$arch")`);
    expect(s).toContain('hakube_fetch "${url%/*}/runc.sha256sum" "$tmpd/runc.sums"');
    expect(s).toContain('sum=""  # no kubernetes.containerd.sha256 configured');
    expect(s).toContain("hakube_put /etc/systemd/system/containerd.service 0644 root root");
    expect(s).toContain("package ${conflicts[*]} is installed and brings its own containerd");
  });
  it("distribution: refuses a package too old for the Kubernetes release before installing it", () => {
    const s = renderContainerdScript(settings({}, { source: "distribution" }));
    expect(s).toContain("apt-cache policy containerd");
    expect(s).toContain("is too old for Kubernetes 1.37.2 (needs 2.3.0+); set hakube:kubernetes.containerd.source: upstream");
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
  it("version checks: Debian's containerd and Ubuntu's -updates 2.2.1 are refused for 1.37, upstream 2.3.x/2.4.x pass (containerd's matrix: 1.37 → 2.4.0+, 2.3.0+)", () => {
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
    expect(ok("2.2.1-0ubuntu1~24.04.3")).toBe(false);
    expect(ok("v2.3.4")).toBe(true);
    expect(ok("v2.4.2")).toBe(true);
    expect(ok("1:2.3.0-1")).toBe(true);
    // 1.36: 2.2.0+ (Ubuntu's -updates 2.2.1 passes)
    const s36 = renderContainerdScript(settings({ version: "1.36.4" }));
    const p36 = [fn(s36, "containerd_supported"), fn(s36, "norm_version")].join("\n");
    expect(execFileSync("bash", ["-c", `${p36}\ncontainerd_supported "$(norm_version "$V")" && echo yes || echo no`], { encoding: "utf8", env: { ...process.env, V: "2.2.1-0ubuntu1~24.04.3" } }).trim()).toBe("yes");
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
    const dir = tmp();
    const file = path.join(dir, "runc.amd64");
    fs.writeFileSync(file, "binary");
    const sum = execFileSync("sha256sum", [file], { encoding: "utf8" }).split(" ")[0];
    const run = (sums: string) => {
      fs.writeFileSync(path.join(dir, "sums"), sums);
      try {
        bash(`hakube_fail() { echo "FAIL $*"; exit 1; }\n${downloadFunctions()}\nhakube_check_sha256 "$F" "$(hakube_published_sha256 "$S" runc.amd64)" https://m/runc.amd64 https://m/runc.sha256sum`, { F: file, S: path.join(dir, "sums") });
        return "ok";
      } catch (e) {
        return String((e as { stdout?: string }).stdout);
      }
    };
    expect(run(`${"0".repeat(64)}  runc.arm64\n${sum}  runc.amd64\n`)).toBe("ok");
    expect(run(`${sum} *runc.amd64\n`)).toBe("ok");
    expect(run(`${sum}\n`)).toBe("ok");
    expect(run(`${"f".repeat(64)}  runc.amd64\n`)).toBe(`FAIL sha256 of https://m/runc.amd64 is ${sum}, https://m/runc.sha256sum says ${"f".repeat(64)}\n`);
    expect(run("")).toMatch(/^FAIL sha256 of https:\/\/m\/runc.amd64 is [0-9a-f]{64}, https:\/\/m\/runc.sha256sum says nothing/);
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
    expect(kubernetes).toMatchObject({ version: "1.37.2", packages: "pkgs.k8s.io", bootstrapTokenTtl: "24h", containerd: { source: "distribution" } });
    expect(() =>
      parseNodePoolConfig({ namespace: "workerPool", hosts: [{ name: "x", address: "a.example.com", roles: ["controlplane"], labels: { "node-role.kubernetes.io/worker": "" } }], kubernetes: { version: "1.29.0" } }),
    ).toThrow(/workerPool:hosts\[0\]\.roles: role "controlplane" is not allowed here[\s\S]*workerPool:hosts\[0\]\.internalAddress: is required[\s\S]*workerPool:kubernetes\.version: 1\.29\.0 is too old/);
  });
});

describe("air-gapped installs (kubernetes.imageRepository, containerd download URLs, sha256, registries; allowCgroupV1)", () => {
  const s = renderContainerdScript(AIRGAP);
  it("containerd and runc come from the configured URL templates, verified against the pinned digests (named by key path)", () => {
    expect(s).toContain(`url=$(hakube_url 'http://files.lab/containerd/v{version}/containerd-{version}-linux-{arch}.tar.gz' "$want" "$arch")`);
    expect(s).toContain(`url=$(hakube_url 'http://files.lab/runc/v{version}/runc.{arch}' "$runc_want" "$arch")`);
    expect(s).toContain(`amd64) sum=${"a".repeat(64)} ;;`);
    expect(s).toContain(`arm64) sum=${"b".repeat(64)} ;;`);
    expect(s).toContain(`amd64) sum=${"c".repeat(64)} ;;`);
    expect(s).toContain('hakube_check_sha256 "$tmpd/containerd.tar.gz" "$sum" "$url" "kubernetes.containerd.sha256.$arch"');
    expect(s).toContain('*) hakube_fail "kubernetes.containerd.runcSha256 has no checksum for $arch (it has: amd64)" ;;');
    expect(s).not.toContain("github.com");
  });
  it("the URL template and the pinned digest, run for real: {version}/{arch} filled; a host arch without a digest fails", () => {
    const run = (arch: string) =>
      bash(`hakube_fail() { echo "FAIL $*"; exit 1; }\n${downloadFunctions()}\narch=${arch}\nhakube_url "$T" 2.4.2 "$arch"`, { T: AIRGAP.containerd.downloadUrl });
    expect(run("arm64").trim()).toBe("http://files.lab/containerd/v2.4.2/containerd-2.4.2-linux-arm64.tar.gz");
    const caseBlock = /^ {2}case "\$arch" in\n[\s\S]*?^ {2}esac$/m.exec(s)![0];
    const pick = (arch: string) => {
      try {
        return bash(`hakube_fail() { echo "FAIL $*"; exit 1; }\narch=${arch}\n${caseBlock}\necho "$sum"`).trim();
      } catch (e) {
        return String((e as { stdout?: string }).stdout).trim();
      }
    };
    expect(pick("arm64")).toBe("b".repeat(64));
    expect(pick("s390x")).toBe("FAIL kubernetes.containerd.sha256 has no checksum for s390x (it has: amd64, arm64)");
  });
  it("the pause image is kubeadm's under kubernetes.imageRepository, and must be", () => {
    expect(s).toContain("kubeadm config images list --kubernetes-version v1.37.2 --image-repository mirror.lab:5000/k8s 2>/dev/null");
    expect(s).toContain("pause=mirror.lab:5000/k8s/pause:3.10.2");
    expect(s).toContain(`[[ "$pause" == mirror.lab:5000/k8s/pause:* ]] || hakube_fail`);
    expect(renderContainerdScript(settings())).toContain(`[[ "$pause" == registry.k8s.io/pause:* ]]`);
  });
  it("config.toml points CRI's registry config_path at /etc/containerd/certs.d", () => {
    expect(renderContainerdConfig("mirror.lab:5000/k8s/pause:3.10.2")).toContain("[plugins.'io.containerd.cri.v1.images'.registry]\n  config_path = '/etc/containerd/certs.d'");
    expect(s).toContain(`grep -qF /etc/containerd/certs.d "$tmpd/dump"`);
  });
  it("hosts.toml per registry: mirrors as [host] tables with capabilities and the CA file; a plain-HTTP server", () => {
    const k8s = renderRegistryFiles("registry.k8s.io", AIRGAP.containerd.registries["registry.k8s.io"]);
    expect(k8s).toEqual([
      {
        path: "/etc/containerd/certs.d/registry.k8s.io/hosts.toml",
        content: `${HOSTS_TOML_MARKER}\n\n[host."https://mirror.lab:5000"]\n  capabilities = ["pull", "resolve"]\n  ca = "/etc/containerd/certs.d/registry.k8s.io/mirror-0-ca.crt"\n`,
      },
      { path: "/etc/containerd/certs.d/registry.k8s.io/mirror-0-ca.crt", content: CA_PEM },
    ]);
    expect(renderRegistryFiles("10.0.0.5:5000", AIRGAP.containerd.registries["10.0.0.5:5000"])).toEqual([
      { path: "/etc/containerd/certs.d/10.0.0.5:5000/hosts.toml", content: `${HOSTS_TOML_MARKER}\nserver = "http://10.0.0.5:5000"\n` },
    ]);
    expect(s).toContain("hakube_put /etc/containerd/certs.d/registry.k8s.io/hosts.toml 0644 root root");
    expect(s).toContain("hakube_put /etc/containerd/certs.d/registry.k8s.io/mirror-0-ca.crt 0644 root root");
    expect(s).toContain("hakube_put /etc/containerd/certs.d/10.0.0.5:5000/hosts.toml 0644 root root");
  });
  it("a registry removed from the config: its hakube hosts.toml and CA files go, other files stay (run for real)", () => {
    const dir = tmp();
    const certs = path.join(dir, "certs.d");
    for (const ns of ["registry.k8s.io", "old.example.com", "mine.example.com"]) fs.mkdirSync(path.join(certs, ns), { recursive: true });
    fs.writeFileSync(path.join(certs, "registry.k8s.io/hosts.toml"), `${HOSTS_TOML_MARKER}\n`);
    fs.writeFileSync(path.join(certs, "old.example.com/hosts.toml"), `${HOSTS_TOML_MARKER}\n`);
    fs.writeFileSync(path.join(certs, "old.example.com/mirror-0-ca.crt"), CA_PEM);
    fs.writeFileSync(path.join(certs, "mine.example.com/hosts.toml"), "# the operator's own\n");
    const lines = s.split("\n");
    const i = lines.findIndex((l) => l.startsWith("for f in /etc/containerd/certs.d/*/hosts.toml; do"));
    const j = lines.indexOf("done", i);
    const loop = lines.slice(i, j + 1).join("\n").replaceAll("/etc/containerd/certs.d", certs);
    const out = bash(`hakube_remove() { local p; for p in "$@"; do if [ -e "$p" ]; then rm -f "$p"; echo "removed $p"; fi; done; }\n${loop}`);
    expect(out).toContain(`removed ${certs}/old.example.com/hosts.toml`);
    expect(fs.existsSync(path.join(certs, "old.example.com"))).toBe(false);
    expect(fs.existsSync(path.join(certs, "registry.k8s.io/hosts.toml"))).toBe(true);
    expect(fs.existsSync(path.join(certs, "mine.example.com/hosts.toml"))).toBe(true);
    expect(bash(`hakube_remove() { echo "removed $*"; }\n${loop}`)).toBe("");
  });
  it("cgroup v1: refused from 1.35 without allowCgroupV1; with it a warning, and no failure", () => {
    const v1 = renderSystemScript({ version: "1.37.2", allowCgroupV1: true });
    expect(v1).not.toContain('hakube_fail "cgroup v2 is required');
    expect(v1).toContain("warning: cgroup v1 host, allowed by hakube:kubernetes.allowCgroupV1 (kubelet failCgroupV1: false)");
    expect(renderSystemScript({ version: "1.37.2" })).toContain("or set hakube:kubernetes.allowCgroupV1: true while the release still allows it");
  });
});
