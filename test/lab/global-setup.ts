/**
 * globalSetup of the lab suite (vitest.lab.config.mts): install what the suite needs on this
 * machine (as root it can) before any test file runs — the lab's tools and etcdctl — through
 * test/ensure-packages.sh (says what and why first; apt's output in $HAKUBE_LAB_DIR/logs/apt.log;
 * nothing installed is upgraded). If that fails, the run fails with the reason: the suite never
 * passes having skipped everything.
 */
import { spawnSync } from "node:child_process";
import * as path from "node:path";

export const LAB_SUITE_PACKAGES = [
  "etcd-client=etcdctl: the suite's etcd checks (health, members, mTLS refusals)",
  "systemd-container=systemd-nspawn: the lab hosts",
  "nftables=nft: the lab's NAT/filter table and partitions",
  "mmdebstrap=the base image",
  "zstd=the base image tarball",
  "iproute2=the bridge and veths",
  "openssh-client=ssh into the hosts",
  "util-linux=nsenter (lab exec), flock (the lab lock)",
  "iputils-ping=smoke.sh",
  // the air-gapped site's toolchain (test/lab/toolchain/build.sh; lab up builds it when missing)
  "libseccomp-dev=runc's seccomp support (toolchain)",
  "pkg-config=finding libseccomp for runc",
  "gcc=cgo (runc) and the static pause binary",
  "dpkg-dev=dpkg-scanpackages for the site's apt repository",
  "gpg=signing the site's apt repository",
];

export default function setup(): void {
  const labDir = process.env.HAKUBE_LAB_DIR ?? "/var/lib/hakube-lab";
  const r = spawnSync("bash", [path.join(__dirname, "..", "ensure-packages.sh"), "--for", "test:lab", "--log", path.join(labDir, "logs", "apt.log"), ...LAB_SUITE_PACKAGES], { stdio: "inherit" });
  if (r.status !== 0) throw new Error(`npm run test:lab: the lab suite's packages could not be installed (exit ${r.status}; see above): nothing was tested`);
}
