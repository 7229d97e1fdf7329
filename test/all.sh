#!/usr/bin/env bash
# The one test command (README "Tests"): installs what the tests need, then runs every suite.
#   npm run test:all            as root on a fresh Debian 12 machine (CI runs exactly this)
# 1. apt packages the real-binary tests use (etcd, haproxy, nginx, keepalived, openssl) and the lab's
#    (test/ensure-packages.sh: says what and why first, installs only missing ones, upgrades nothing);
# 2. npm ci; 3. type check; 4. the fast suite (npm test) with HAKUBE_REQUIRE_REAL_BINARIES=1: a
#    real-binary test that cannot run fails instead of skipping; 5. the lab suite (npm run test:lab, root only).
#    Before it, as root: the lab's air-gapped toolchain (test/lab/toolchain/build.sh: Kubernetes,
#    etcd, containerd, runc, CNI, images, the Pulumi CLI from the Go module proxy; cached by the
#    hash of its manifest, ~18 min cold on an idle 2-core machine (35 min loaded), < 1 s cached).
# HAKUBE_SKIP_LAB=1 skips step 5 and the toolchain (and says so last).
set -Eeuo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
say() { printf '\n== %s (%ss)\n' "$*" "$((SECONDS - t0))"; }

# PKG=why: what the real-binary tests of the fast suite use, and (as root, unless HAKUBE_SKIP_LAB=1) the lab's
APT_PACKAGES=("etcd-server=real etcd in test/etcd (3 members on loopback)" "etcd-client=etcdctl for the etcd tests and the lab suite"
  "haproxy=haproxy -c and live HAProxy tests" "nginx=nginx -t of the rendered stream config" "libnginx-mod-stream=nginx's stream module"
  "keepalived=keepalived -t and VRRP failover in network namespaces" "openssl=PKI cross-checks" "curl=the etcd download test"
  "iproute2=network namespaces (ip)" "procps=pgrep/sysctl" "psmisc=killall-free process checks (fuser)")
# what test/lab/build-image.sh and lab.sh use on this machine (util-linux: nsenter, flock)
LAB_PACKAGES=("mmdebstrap=the lab's base image" "systemd-container=systemd-nspawn: the lab hosts" "nftables=the lab's NAT/filter table and partitions"
  "zstd=the base image tarball" "openssh-client=ssh into lab hosts" "iputils-ping=smoke.sh" "util-linux=nsenter, flock"
  "libseccomp-dev=runc's seccomp support (the lab's toolchain build)" "pkg-config=finding libseccomp for runc" "gcc=cgo (runc) and the static pause binary"
  "dpkg-dev=dpkg-scanpackages for the site's apt repository" "gpg=signing the site's apt repository")
APT_LOG=reports/apt.log

# Tests that need a real binary (etcd, haproxy, nginx, keepalived, root for namespaces) fail instead
# of skipping: a test command never exits 0 having skipped what it was meant to test.
export HAKUBE_REQUIRE_REAL_BINARIES=1

if [ "$(id -u)" = 0 ]; then
  say "apt packages (only missing ones; nothing installed is upgraded; apt's output: $APT_LOG)"
  want=("${APT_PACKAGES[@]}")
  [ "${HAKUBE_SKIP_LAB:-0}" = 1 ] || want+=("${LAB_PACKAGES[@]}")
  bash test/ensure-packages.sh --for test:all --log "$APT_LOG" "${want[@]}"
else
  echo "not root: cannot install packages or use network namespaces; the real-binary tests will fail (HAKUBE_REQUIRE_REAL_BINARIES=1). Run: sudo npm run test:all"
fi

say "npm ci"
npm ci --no-audit --no-fund

say "type check"
npx tsc --noEmit

say "fast suite"
npm test

if [ "$(id -u)" != 0 ]; then
  say "FAILED: the lab suite needs root (systemd-nspawn hosts on a bridge): not run. Run: sudo npm run test:all"
  exit 1
elif [ "${HAKUBE_SKIP_LAB:-0}" = 1 ]; then
  say "fast suite passed; the lab suite was NOT run (HAKUBE_SKIP_LAB=1)"
else
  say "the lab's toolchain (built from the Go module proxy when its manifest's cache is missing)"
  bash test/lab/toolchain/build.sh
  say "lab suite (boots the lab, both engines, faults; leaves the lab down)"
  npm run test:lab
  say "all tests passed (fast suite with every real-binary test run, lab suite)"
fi
