/**
 * test/lab/lab.sh's handling of its directory, without booting hosts or touching this machine's
 * network: lab.sh is sourced with HAKUBE_LAB_DIR in a temp directory, and `down` runs with the host
 * and network steps stubbed. It must leave no secret behind, keep only the documented cache, make
 * every secret root-only (0700 directories, 0600 files — also files an older run left 0644), and
 * `down --purge` must remove the whole directory (only one the lab made).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";

const LAB_SH = path.join(__dirname, "lab", "lab.sh");
let tmp: string;
let lab: string;
let repo: string;

const mode = (p: string) => (fs.statSync(p).mode & 0o777).toString(8);
const put = (rel: string, m = 0o644, text = "x\n") => {
  const p = path.join(lab, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true, mode: 0o755 });
  fs.writeFileSync(p, text, { mode: m });
  fs.chmodSync(p, m);
};

/** Source lab.sh (defines functions, runs nothing), stub what touches hosts and the network, run `body`. */
function labShell(body: string) {
  const script = `set -euo pipefail
source ${JSON.stringify(LAB_SH)}
REPO=${JSON.stringify(repo)}
stop_hosts() { :; }; net_down() { echo "(net_down stubbed)" >&2; }; lock() { :; }
${body}`;
  const r = spawnSync("bash", ["-c", script], { encoding: "utf8", env: { ...process.env, HAKUBE_LAB_DIR: lab } });
  return { code: r.status, out: r.stdout + r.stderr };
}

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hakube-labdir-"));
  lab = path.join(tmp, "lab");
  repo = path.join(tmp, "repo");
  fs.mkdirSync(lab, { mode: 0o755 });
  fs.chmodSync(lab, 0o755);
  fs.mkdirSync(repo);
  fs.writeFileSync(path.join(repo, "Pulumi.lab.yaml"), "config: { hakube:sshPrivateKey: { secure: x } }\n");
  // what an older run (before this fix) left: everything world-readable
  put("kubeconfig");
  put("outputs.json", 0o644, '{"joinInfo":{"token":"abcdef.0123456789abcdef"}}');
  put("stack-config.json");
  put("state/dev.json");
  put("state/dev.json.generation");
  put("pulumi/.pulumi/stacks/hakube/lab.json");
  put("keys/id_ed25519");
  put("keys/id_ed25519.pub");
  put("hostkeys/lb1");
  put("hostkeys/lb1.pub");
  put("image/bookworm-abc/etc/hostname");
  put("logs/lb1.log");
  put("known_hosts");
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("lab.sh: the lab directory", () => {
  test("secure_labdir: the directory and its key/state directories 0700, every secret 0600, public keys untouched", () => {
    const r = labShell("secure_labdir");
    expect(r.code, r.out).toBe(0);
    expect(mode(lab)).toBe("700");
    for (const d of ["keys", "hostkeys", "state", "pulumi"]) expect(mode(path.join(lab, d)), d).toBe("700");
    for (const f of ["kubeconfig", "outputs.json", "stack-config.json", "keys/id_ed25519", "hostkeys/lb1", "state/dev.json", "state/dev.json.generation"])
      expect(mode(path.join(lab, f)), f).toBe("600");
    expect(mode(path.join(lab, "hostkeys/lb1.pub"))).toBe("644");
    expect(fs.existsSync(path.join(lab, ".hakube-lab"))).toBe(true);
  });

  test("down: removes the deploy state and every secret of the deployed cluster, keeps only the cache, and says both", () => {
    const r = labShell("cmd_down");
    expect(r.code, r.out).toBe(0);
    expect(r.out, "the machine's network was left alone").toContain("(net_down stubbed)");
    for (const gone of ["kubeconfig", "outputs.json", "stack-config.json", "state", "pulumi"]) expect(fs.existsSync(path.join(lab, gone)), gone).toBe(false);
    expect(fs.existsSync(path.join(repo, "Pulumi.lab.yaml"))).toBe(false);
    for (const kept of ["image/bookworm-abc/etc/hostname", "keys/id_ed25519", "hostkeys/lb1", "logs/lb1.log", "known_hosts"]) expect(fs.existsSync(path.join(lab, kept)), kept).toBe(true);
    expect(r.out).toMatch(/removed the deploy state and its secrets: kubeconfig outputs\.json stack-config\.json state pulumi .*Pulumi\.lab\.yaml/);
    expect(r.out).toMatch(/kept in .* \(.*, root only, 0700\): the base image, the lab SSH key and host keys \(0600\), logs/);
    expect(r.out).toMatch(/'down --purge' removes the directory entirely/);
    // nothing left in it that anyone but root can read: the directory is 0700 and the keys 0600
    expect(mode(lab)).toBe("700");
    expect(mode(path.join(lab, "keys/id_ed25519"))).toBe("600");
    const grep = spawnSync("grep", ["-rl", "abcdef.0123456789abcdef", lab], { encoding: "utf8" });
    expect(grep.stdout).toBe("");
  });

  test("down --purge: the whole directory goes; a directory without the lab's marker is refused", () => {
    const r = labShell("cmd_down --purge");
    expect(r.code, r.out).toBe(0);
    expect(fs.existsSync(lab)).toBe(false);
    expect(r.out).toMatch(/purged .*lab \(/);

    fs.mkdirSync(lab);
    fs.writeFileSync(path.join(lab, "precious"), "not the lab's\n");
    const refused = labShell("purge_labdir");
    expect(refused.code).not.toBe(0);
    expect(refused.out).toMatch(/has no \.hakube-lab marker: not removing it/);
    expect(fs.existsSync(path.join(lab, "precious"))).toBe(true);
  });
});
