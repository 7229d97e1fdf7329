#!/usr/bin/env bash
# The one test command (README "Tests"): installs what the tests need, then runs every suite.
#   npm run test:all            as root on a fresh Debian 12 machine (CI runs exactly this)
# 1. apt packages the real-binary tests use (etcd, haproxy, nginx, keepalived, openssl) and the lab's;
# 2. npm ci; 3. type check; 4. the fast suite (npm test); 5. the lab suite (npm run test:lab, root only).
# HAKUBE_SKIP_LAB=1 skips step 5.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
say() { printf '\n== %s (%ss)\n' "$*" "$((SECONDS - t0))"; }

APT_PACKAGES=(etcd-server etcd-client haproxy nginx libnginx-mod-stream keepalived openssl curl iproute2 procps psmisc)
# what test/lab/build-image.sh and lab.sh use on this machine (util-linux: nsenter, flock; procps:
# sysctl, pgrep; iproute2: ip) — etcdctl for the lab suite's checks comes with etcd-client above
LAB_PACKAGES=(mmdebstrap systemd-container nftables zstd openssh-client iputils-ping util-linux)

if [ "$(id -u)" = 0 ]; then
  say "apt packages"
  want=("${APT_PACKAGES[@]}")
  [ "${HAKUBE_SKIP_LAB:-0}" = 1 ] || want+=("${LAB_PACKAGES[@]}")
  missing=()
  for p in "${want[@]}"; do dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get -q -o DPkg::Lock::Timeout=600 update >/dev/null
    # policy-rc.d: install the services without starting them on this machine (an existing one is left alone)
    made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get -q -y -o DPkg::Lock::Timeout=600 install --no-install-recommends "${missing[@]}" >/dev/null
    if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
  fi
else
  echo "not root: skipping apt packages; tests that need etcd/haproxy/nginx/keepalived binaries skip when absent"
fi

say "npm ci"
npm ci --no-audit --no-fund

say "type check"
npx tsc --noEmit

say "fast suite"
npm test

if [ "$(id -u)" = 0 ] && [ "${HAKUBE_SKIP_LAB:-0}" != 1 ]; then
  say "lab suite (boots the lab, both engines, faults; leaves the lab down)"
  npm run test:lab
else
  say "lab suite skipped ($([ "$(id -u)" = 0 ] && echo "HAKUBE_SKIP_LAB=1" || echo "not root"))"
fi
say "all tests passed"
