#!/usr/bin/env bash
# Install the Debian packages a hakube test command or the lab needs on THIS machine, saying first
# exactly what and why, without upgrading what is already installed.
#
#   test/ensure-packages.sh --for "WHO" --log FILE [--dry-run] PKG=REASON...
#
# - Only missing packages are installed (`apt-get install --no-install-recommends --no-upgrade`).
# - A package built from the same source as an installed one (systemd-container next to systemd)
#   is pinned to the installed version when the archive still has it: installing it then upgrades
#   nothing (without the pin, apt upgrades systemd, libsystemd0, libudev1, … to match).
# - Before anything is installed it prints one block: each package, its version and why, the
#   dependencies apt adds, and any package it would have to upgrade. Upgrades are refused unless
#   HAKUBE_APT_ALLOW_UPGRADES=1 (the message says which and why).
# - apt's own output goes to FILE (appended), never to the terminal; on failure its tail is shown.
# Exit 0: everything present (or installed). Exit 1: not root, refused upgrade, or apt failed.
set -euo pipefail

who="" log="" dry=0 pairs=()
while [ $# -gt 0 ]; do
  case $1 in
    --for) who=$2; shift 2 ;;
    --log) log=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    -*) echo "ensure-packages: unknown option $1" >&2; exit 2 ;;
    *) pairs+=("$1"); shift ;;
  esac
done
[ -n "$who" ] && [ -n "$log" ] && [ "${#pairs[@]}" -gt 0 ] || { echo "usage: ensure-packages.sh --for WHO --log FILE [--dry-run] PKG=REASON..." >&2; exit 2; }
say() { echo "$who: $*" >&2; }

declare -A why=()
missing=()
for pr in "${pairs[@]}"; do
  p=${pr%%=*}; why[$p]=${pr#*=}
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] && [ "$dry" = 0 ]; then
  say "missing Debian packages: ${missing[*]} — run as root (it installs them), or: apt-get install --no-install-recommends ${missing[*]}"
  exit 1
fi

mkdir -p "$(dirname "$log")"
{ echo; echo "=== $(date -Is) $who: ensure-packages ${missing[*]}"; } >> "$log"
export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -q -o DPkg::Lock::Timeout=600)

candidate() { { apt-cache policy "$1" 2>/dev/null || true; } | awk '$1 == "Candidate:" && !v { v = $2 } END { print v }'; }
need_update=0
for p in "${missing[@]}"; do c=$(candidate "$p"); { [ -z "$c" ] || [ "$c" = "(none)" ]; } && need_update=1; done
if [ "$need_update" = 1 ]; then
  say "apt-get update (package lists are missing or lack a package; log: $log)"
  "${APT[@]}" update >> "$log" 2>&1 || { tail -5 "$log" >&2; say "apt-get update failed (log: $log)"; exit 1; }
fi

# Pin a package to the installed version of its source's other binaries, when that version is available.
declare -A installed_by_source=()
while read -r src ver st; do
  [ "$st" = installed ] && installed_by_source[$src]=$ver
done < <(dpkg-query -W -f='${source:Package} ${Version} ${db:Status-Status}\n' 2>/dev/null || true)
args=()
declare -A pinv=()
for p in "${missing[@]}"; do
  src=$({ apt-cache show --no-all-versions "$p" 2>/dev/null || true; } | awk '$1 == "Source:" && !s { s = $2 } END { print s }')
  src=${src:-$p}
  v=${installed_by_source[$src]:-}
  if [ -n "$v" ] && [ "$v" != "$(candidate "$p")" ] && { apt-cache madison "$p" 2>/dev/null || true; } | awk -F' *[|] *' -v v="$v" '$2 == v { f = 1 } END { exit !f }'; then
    args+=("$p=$v"); pinv[$p]=$v
  else
    args+=("$p")
  fi
done

# What apt would do: Inst lines; "[old]" marks an upgrade of something installed.
sim=$("${APT[@]}" -s install --no-install-recommends --no-upgrade "${args[@]}" 2>&1) || {
  echo "$sim" >> "$log"; echo "$sim" | grep -E '^E:|depends|Depends' | head -8 >&2
  say "apt cannot install ${args[*]} (log: $log)"; exit 1; }
echo "$sim" >> "$log"
declare -A newver=()
deps=() upgrades=()
re_upgrade='^\[([^]]+)\] \(([^ ]+)' re_new='^\(([^ ]+)'
while read -r _ name rest; do
  if [[ $rest =~ $re_upgrade ]]; then upgrades+=("$name ${BASH_REMATCH[1]} -> ${BASH_REMATCH[2]}")
  elif [[ $rest =~ $re_new ]]; then
    newver[$name]=${BASH_REMATCH[1]}
    [ -n "${why[$name]:-}" ] || deps+=("$name")
  fi
done < <(echo "$sim" | grep '^Inst ')

{
  echo "$who: this machine lacks Debian packages it needs; installing (apt-get install --no-install-recommends --no-upgrade; apt's output: $log):"
  for p in "${missing[@]}"; do
    pin=""; [ -z "${pinv[$p]:-}" ] || pin=" (pinned: the version of its installed siblings, so they are not upgraded)"
    printf '  %-22s %-22s %s%s\n' "$p" "${newver[$p]:-?}" "${why[$p]}" "$pin"
  done
  [ "${#deps[@]}" -eq 0 ] || echo "  + dependencies: ${deps[*]}"
  if [ "${#upgrades[@]}" -eq 0 ]; then echo "  nothing already installed is upgraded"
  else printf '  UPGRADES installed packages: %s\n' "${upgrades[@]}"; fi
} >&2

if [ "${#upgrades[@]}" -gt 0 ] && [ "${HAKUBE_APT_ALLOW_UPGRADES:-0}" != 1 ]; then
  say "refusing to upgrade installed packages as a side effect (the archive no longer has versions that match them)."
  say "Upgrade them yourself first (apt-get install --only-upgrade ${upgrades[*]%% *}), or set HAKUBE_APT_ALLOW_UPGRADES=1."
  exit 1
fi
[ "$dry" = 1 ] && { say "dry run: nothing installed"; exit 0; }

# policy-rc.d: packages with services (etcd, haproxy, nginx, keepalived) do not start them here
made_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
t0=$SECONDS
if ! "${APT[@]}" -y -o Dpkg::Options::=--force-confold install --no-install-recommends --no-upgrade "${args[@]}" >> "$log" 2>&1; then
  tail -15 "$log" >&2; say "apt-get install failed (log: $log)"; exit 1
fi
if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
say "installed ${missing[*]} in $((SECONDS - t0)) s"
