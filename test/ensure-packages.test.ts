/**
 * test/ensure-packages.sh (what test/all.sh and the lab install on this machine) against fake
 * dpkg-query / apt-cache / apt-get: it says what it installs and why before installing, keeps apt's
 * output in the log, installs only what is missing, pins a package next to its installed siblings
 * (systemd-container next to systemd) so nothing installed is upgraded, and refuses upgrades it
 * cannot avoid. Nothing is installed on this machine.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";

const SCRIPT = path.join(__dirname, "ensure-packages.sh");
let dir: string;

// The machine of issue 9: systemd 252.38 installed; the archive's newest systemd-container is
// 252.39 (which depends on systemd 252.39), the security suite still has 252.38.
const FAKES: Record<string, string> = {
  "dpkg-query": `#!/bin/bash
case "$*" in
  *'\${source:Package}'*) awk '{ print $1, $2, $3 }' "$FAKE_DIR/installed" ;;   # "source version status" lines
  *) p=\${@: -1}; awk -v p="$p" '$4 == p { print "installed"; f = 1 } END { exit !f }' "$FAKE_DIR/installed" ;;
esac`,
  "apt-cache": `#!/bin/bash
echo "apt-cache $*" >> "$FAKE_DIR/calls"
case "$1" in
  policy) case "$2" in systemd-container) echo "  Candidate: 252.39-1~deb12u2" ;; nftables) echo "  Candidate: 1.0.6-2+deb12u2" ;; *) echo "  Candidate: (none)" ;; esac ;;
  show) [ "\${@: -1}" = systemd-container ] && echo "Source: systemd"; echo "Package: \${@: -1}" ;;
  madison) [ "$2" = systemd-container ] && cat "$FAKE_DIR/madison" ;;
esac`,
  "apt-get": `#!/bin/bash
echo "apt-get $*" >> "$FAKE_DIR/calls"
echo "Reading package lists... (apt noise)"
case " $* " in
  *" -s "*)
    for a in "$@"; do case $a in
      systemd-container=252.38-1~deb12u1) echo "Inst systemd-container (252.38-1~deb12u1 Debian-Security:12/stable-security [amd64])" ;;
      systemd-container) echo "Inst systemd [252.38-1~deb12u1] (252.39-1~deb12u2 Debian:12.13/stable [amd64])"
                         echo "Inst libsystemd0 [252.38-1~deb12u1] (252.39-1~deb12u2 Debian:12.13/stable [amd64])"
                         echo "Inst systemd-container (252.39-1~deb12u2 Debian:12.13/stable [amd64])" ;;
      nftables) echo "Inst libnftables1 (1.0.6-2+deb12u2 Debian:12.13/stable [amd64])"; echo "Inst nftables (1.0.6-2+deb12u2 Debian:12.13/stable [amd64])" ;;
    esac; done ;;
esac`,
  id: `#!/bin/sh\necho 0`,
};

function setup(o: { installed: string[]; madison: string[] }) {
  fs.writeFileSync(path.join(dir, "installed"), o.installed.map((l) => `${l}\n`).join(""));
  fs.writeFileSync(path.join(dir, "madison"), o.madison.map((v) => `systemd-container | ${v} | http://deb.debian.org/debian x/main amd64 Packages\n`).join(""));
  fs.writeFileSync(path.join(dir, "calls"), "");
  fs.rmSync(path.join(dir, "apt.log"), { force: true });
}
function run(pkgs: string[], env: Record<string, string> = {}) {
  const r = spawnSync("bash", [SCRIPT, "--for", "lab", "--log", path.join(dir, "apt.log"), ...pkgs], {
    encoding: "utf8",
    env: { ...process.env, PATH: `${path.join(dir, "bin")}:${process.env.PATH}`, FAKE_DIR: dir, HAKUBE_APT_ALLOW_UPGRADES: "", ...env },
  });
  const calls = fs.readFileSync(path.join(dir, "calls"), "utf8");
  const log = fs.existsSync(path.join(dir, "apt.log")) ? fs.readFileSync(path.join(dir, "apt.log"), "utf8") : "";
  return { code: r.status, out: r.stdout + r.stderr, calls, installs: calls.split("\n").filter((l) => /^apt-get .* install /.test(l) && !/ -s /.test(l)), log };
}
const SYSTEMD_252_38 = ["systemd 252.38-1~deb12u1 installed systemd", "systemd 252.38-1~deb12u1 installed libsystemd0", "zstd 1.5.4 installed zstd"];
const WANT = ["systemd-container=systemd-nspawn: runs the lab hosts", "nftables=nft: the lab's firewall and NAT table", "zstd=the image tarball"];

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hakube-ensure-pkgs-"));
  fs.mkdirSync(path.join(dir, "bin"));
  for (const [n, body] of Object.entries(FAKES)) fs.writeFileSync(path.join(dir, "bin", n), body + "\n", { mode: 0o755 });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("ensure-packages.sh", () => {
  test("prints what it installs and why first, installs only the missing ones, pinned so that systemd is not upgraded; apt's output only in the log", () => {
    setup({ installed: SYSTEMD_252_38, madison: ["252.39-1~deb12u2", "252.38-1~deb12u1"] });
    const r = run(WANT);
    expect(r.code, r.out).toBe(0);
    const block = r.out.split("\n");
    expect(block[0]).toMatch(/^lab: this machine lacks Debian packages it needs; installing \(apt-get install --no-install-recommends --no-upgrade; apt's output: .*apt\.log\):$/);
    expect(r.out).toMatch(/^ {2}systemd-container +252\.38-1~deb12u1 +systemd-nspawn: runs the lab hosts \(pinned/m);
    expect(r.out).toMatch(/^ {2}nftables +1\.0\.6-2\+deb12u2 +nft: the lab's firewall and NAT table$/m);
    expect(r.out).toMatch(/^ {2}\+ dependencies: libnftables1$/m);
    expect(r.out).toMatch(/^ {2}nothing already installed is upgraded$/m);
    expect(r.out).not.toMatch(/zstd/); // present: not mentioned, not installed
    expect(r.out).not.toMatch(/Reading package lists/);
    expect(r.log).toMatch(/Reading package lists/);
    expect(r.installs).toHaveLength(1);
    expect(r.installs[0]).toMatch(/ install --no-install-recommends --no-upgrade systemd-container=252\.38-1~deb12u1 nftables$/);
    // the block comes before the install
    expect(r.out.indexOf("this machine lacks")).toBeLessThan(r.out.indexOf("installed systemd-container nftables in"));
  });

  test("an upgrade it cannot avoid is named and refused (nothing installed) unless HAKUBE_APT_ALLOW_UPGRADES=1", () => {
    setup({ installed: SYSTEMD_252_38, madison: ["252.39-1~deb12u2"] });
    const r = run(WANT);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/UPGRADES installed packages: systemd 252\.38-1~deb12u1 -> 252\.39-1~deb12u2/);
    expect(r.out).toMatch(/libsystemd0 252\.38-1~deb12u1 -> 252\.39-1~deb12u2/);
    expect(r.out).toMatch(/refusing to upgrade installed packages as a side effect/);
    expect(r.out).toMatch(/apt-get install --only-upgrade systemd libsystemd0/);
    expect(r.installs).toEqual([]);
    const allowed = run(WANT, { HAKUBE_APT_ALLOW_UPGRADES: "1" });
    expect(allowed.code, allowed.out).toBe(0);
    expect(allowed.installs[0]).toMatch(/ install --no-install-recommends --no-upgrade systemd-container nftables$/);
  });

  test("everything present: silent, apt never runs", () => {
    setup({ installed: [...SYSTEMD_252_38, "systemd 252.38 installed systemd-container", "nftables 1.0.6 installed nftables"], madison: [] });
    const r = run(WANT);
    expect(r.code).toBe(0);
    expect(r.out).toBe("");
    expect(r.calls).toBe("");
  });
});
