#!/usr/bin/env bash
# hakube lab: the hosts of Pulumi.dev.yaml as VM-like Debian hosts on this machine
# (systemd-nspawn system containers: systemd is PID 1, sshd with key auth, static IP on the
# private bridge hkbr0 10.123.0.1/24, NAT only to the Debian mirror).
#
#   lab.sh up [--fresh]      build the base image if needed, boot every host, wait for ssh,
#                            write stack-config.json + known_hosts (--fresh: new rootfs copies)
#   lab.sh down [--purge]    stop all hosts; remove rootfs copies, bridge, nft tables, cgroups and
#                            the deploy state with its secrets (kubeconfig, outputs.json, state/,
#                            pulumi/, stack-config.json, Pulumi.lab.yaml); restore sysctls. The cache
#                            stays (image, lab SSH key, host keys, logs); --purge removes $HAKUBE_LAB_DIR entirely
#   lab.sh status            name, machine, address, running/stopped (+ unplugged/partitioned,
#                            holds-VIP), and which host holds the VIP
#   lab.sh ssh NAME [cmd...] ssh as root with the lab key (strict host key checking)
#   lab.sh exec NAME cmd...  run in the host's namespaces via nsenter (works while cut off)
#   lab.sh crash NAME        SIGKILL the host's PID 1 (power cut)
#   lab.sh stop NAME         clean poweroff          lab.sh start NAME   boot it, wait for ssh
#   lab.sh unplug NAME       host-side veth down     lab.sh plug NAME    veth up again
#   lab.sh partition NAME    drop all its frames     lab.sh heal NAME    undo partition
#   lab.sh config            print the path of stack-config.json
#   lab.sh build [--force]   build the base image (up does this when needed)
#   lab.sh toolchain [--check|--path|--force]
#                            build the air-gapped site's toolchain from the Go module proxy
#                            (test/lab/toolchain/build.sh; up does this when it is missing)
#   lab.sh site up|down|status   the site's file mirror (GW:8080) and registry (GW:5000); up/down
#                            start and stop them with the hosts (HAKUBE_LAB_SITE=0: without them)
#   lab.sh mem               memory per running host
#   lab.sh deploy [--engine nginx] [--harness] [--components hosts,pki,etcd,lb,controlplane,workers] [--fresh]
#                            up (if needed), then deploy the stack file onto the hosts: `pulumi up`
#                            of stack "lab" (backend file://$HAKUBE_LAB_DIR/pulumi, gitignored
#                            Pulumi.lab.yaml) when the Pulumi CLI is installed, else (or with
#                            --harness) the realizing harness (test/lab/deploy.ts); prints the outputs
#   lab.sh destroy [--harness]  pulumi destroy of the lab stack (or, without one, the harness deploy's delete steps)
# NAME is the host name from the stack file (lb1) or the machine name (hk-lb1).
#
# Environment: HAKUBE_LAB_DIR (cache/state dir, default /var/lib/hakube-lab),
#   HAKUBE_LAB_STACK (stack file, default <repo>/Pulumi.dev.yaml),
#   HAKUBE_LAB_SUPPRESS_SYNC (default 1: fsync is a no-op inside hosts; a host crash keeps the
#   page cache of this machine, so crash tests are unaffected; default 0 for a deploy that includes
#   Kubernetes, whose containerd cannot run without fsync), HAKUBE_LAB_SSH_TIMEOUT (s, 180).
set -euo pipefail

LAB_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$LAB_SRC/../.." && pwd)
LABDIR=${HAKUBE_LAB_DIR:-/var/lib/hakube-lab}
STACK_FILE=${HAKUBE_LAB_STACK:-$REPO/Pulumi.dev.yaml}

# Lab network (fixed; the stack file's addresses are checked against it).
BR=hkbr0
NET=10.123.0.0/24
GW=10.123.0.1
PREFIXLEN=24
IFACE=host0                      # the veth name inside an nspawn guest
MPREFIX=hk-                      # machine name = hk-<name>, at most 12 characters
NFT_TABLE=hakube_lab             # table ip: NAT + forward/input filter for the bridge
NFT_PART=hakube_part_            # table netdev hakube_part_<name>: partition of one host
CG=hakube-lab                    # cgroup directory (below the caller's cgroup) per hierarchy
MIRROR_HOSTS=(deb.debian.org)    # the only outside hosts lab hosts may reach (tcp 80/443)
SUPPRESS_SYNC=${HAKUBE_LAB_SUPPRESS_SYNC:-1}
SSH_TIMEOUT=${HAKUBE_LAB_SSH_TIMEOUT:-180}
SITE=${HAKUBE_LAB_SITE:-1}       # 0: no air-gapped site services (mirror, registry) with up
SITE_PORTS="8080, 5000"          # the site's file mirror and registry on the gateway (site.sh)
# shellcheck source=container-host.sh
. "$LAB_SRC/container-host.sh"

KEY=$LABDIR/keys/id_ed25519
HOSTKEYS=$LABDIR/hostkeys
HOSTS=$LABDIR/hosts
RUN=$LABDIR/run
LOGS=$LABDIR/logs
KNOWN_HOSTS=$LABDIR/known_hosts
SSH_OPTS=(-F /dev/null -i "$KEY" -o IdentitiesOnly=yes -o BatchMode=yes
  -o UserKnownHostsFile="$KNOWN_HOSTS" -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes
  -o ConnectTimeout=3 -o LogLevel=ERROR)

die() { echo "lab: ERROR: $*" >&2; exit 1; }
say() { echo "lab: $*" >&2; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
secs_since() { local d=$(( $(now_ms) - $1 )); printf '%d.%01d' $((d / 1000)) $(((d % 1000) / 100)); }

# ---- topology --------------------------------------------------------------------------------
NAMES=(); declare -A ADDR=() ROLES=(); VIP="" VIP_PORT=6443
load_topology() {  # from the stack file, or the snapshot that `up` took (commands on a live lab)
  local src=${1:-auto} out kind a b c
  if [ "$src" = auto ] && [ -s "$RUN/topology.tsv" ]; then out=$(cat "$RUN/topology.tsv")
  else
    command -v node >/dev/null || die "node is required to read $STACK_FILE"
    out=$(node "$LAB_SRC/topology.cjs" hosts "$STACK_FILE" --net "$NET" --gateway "$GW" \
      --machine-prefix "$MPREFIX" --max-machine-name 12 --interface "$IFACE") \
      || { [ "${LOAD_SOFT:-0}" = 1 ] && return 1; die "cannot use the topology of $STACK_FILE (see above)"; }
  fi
  NAMES=(); ADDR=(); ROLES=(); VIP=""
  while IFS=$'\t' read -r kind a b c; do
    case $kind in
      host) NAMES+=("$a"); ADDR[$a]=$b; ROLES[$a]=$c ;;
      vip) VIP=$a; VIP_PORT=${c:-6443} ;;
    esac
  done <<< "$out"
  TOPOLOGY_TSV=$out
}
host_arg() {  # NAME or hk-NAME -> NAME (must be in the topology)
  local n=${1:?missing host NAME}; n=${n#"$MPREFIX"}
  [ -n "${ADDR[$n]:-}" ] || die "unknown host '$1' (hosts: ${NAMES[*]})"
  echo "$n"
}
mach() { echo "$MPREFIX$1"; }
veth() { echo "vb-$MPREFIX$1"; }

# ---- processes: only the ones recorded in our own pid files -----------------------------------
proc_start() {  # PID -> its start time (clock ticks since boot); nothing for zombies / no process
  local st; st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 0
  case $st in Z*|X*) return 0 ;; esac
  echo "$st" | cut -d' ' -f20
}
launcher_of() {  # NAME -> pid of its live launcher (verified by start time), else fail
  local f=$RUN/$1.pid pid st
  [ -f "$f" ] || return 1
  read -r pid st < "$f" || return 1
  [ -n "$pid" ] && [ "$(proc_start "$pid")" = "$st" ] && echo "$pid"
}
nspawn_of() { local l; l=$(launcher_of "$1") && pgrep -P "$l" -x systemd-nspawn; }
pid1_of() { local p; p=$(nspawn_of "$1") && pgrep -P "$p" | head -1; }
running() { launcher_of "$1" >/dev/null; }

cg_procs() {  # NAME -> pids still inside the cgroups recorded for it (all started by the lab)
  local f=$RUN/$1.cgroups cg
  [ -f "$f" ] || return 0
  while read -r cg; do
    if [ -d "$cg" ]; then find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null || true; fi
  done < "$f" | sort -un
}
rm_cgroups() {  # NAME: remove the cgroups recorded for it (and our empty parent directories)
  local f=$RUN/$1.cgroups cg
  [ -f "$f" ] || return 0
  while read -r cg; do
    if [ -d "$cg" ]; then find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
    if [ -d "$cg" ]; then say "warning: cannot remove cgroup $cg"; continue; fi
    rmdir "$(dirname "$cg")" 2>/dev/null || true
  done < "$f"
  rm -f "$f"
}
reap() {  # NAME: its launcher is gone: kill what is left in its cgroups, remove them
  local n=$1 pids tries=0
  pids=$(cg_procs "$n")
  while [ -n "$pids" ] && [ $tries -lt 50 ]; do
    [ $tries = 0 ] && say "$n: killing leftover processes of an earlier run: $(echo $pids)"
    kill -KILL $pids 2>/dev/null || true
    sleep 0.1; tries=$((tries + 1)); pids=$(cg_procs "$n")
  done
  [ -z "$pids" ] || say "warning: $n: processes survive in its cgroups: $pids"
  rm_cgroups "$n"
  rm -f "$RUN/$n.pid"
}
wait_gone() {  # NAME [timeout_s]: wait for its launcher to exit; then SIGKILL what is left
  local n=$1 t=${2:-30} l end
  end=$((SECONDS + t))
  while l=$(launcher_of "$n"); do
    if [ $SECONDS -ge "$end" ]; then
      say "$n: did not stop in ${t}s: killing it"
      kill -KILL "$(pgrep -P "$l" -x systemd-nspawn)" "$l" 2>/dev/null || true
      sleep 0.3
      break
    fi
    sleep 0.2
  done
  reap "$n"
}

# ---- sysctls on this machine: remember the original, restore on down -------------------------
set_sysctl() {  # key value [min]: with min, only raise to value if below it
  local k=$1 v=$2 cur f=$RUN/sysctl.$1
  cur=$(sysctl -n "$k")
  if [ "${3:-}" = min ] && [ "$cur" -ge "$v" ]; then return 0; fi
  [ "$cur" = "$v" ] && return 0
  [ -f "$f" ] || echo "$cur $v" > "$f"
  sysctl -qw "$k=$v"
  say "sysctl $k: $cur -> $v (restored by down)"
}
restore_sysctls() {
  local f k orig set cur
  for f in "$RUN"/sysctl.*; do
    [ -f "$f" ] || continue
    k=${f##*/sysctl.}; read -r orig set < "$f"; cur=$(sysctl -n "$k")
    if [ "$cur" = "$set" ]; then sysctl -qw "$k=$orig"; say "sysctl $k restored to $orig"
    else say "warning: sysctl $k is $cur (not the $set the lab set): left as it is"; fi
    rm -f "$f"
  done
}

# ---- network ---------------------------------------------------------------------------------
dns_server() { awk '/^nameserver/{print $2; exit}' /etc/resolv.conf; }
net_up() {
  local other ext dns mirror_ips
  other=$(ip -4 -o route show to "$NET" | grep -v " dev $BR " || true)
  [ -z "$other" ] || die "the lab network $NET is already routed elsewhere: $other"
  if ip link show "$BR" >/dev/null 2>&1; then
    ip -d -o link show "$BR" | grep -q ' bridge ' || die "$BR exists and is not a bridge"
    say "reusing existing bridge $BR"
  else
    ip link add "$BR" type bridge
  fi
  sysctl -qw "net.ipv6.conf.$BR.disable_ipv6=1" 2>/dev/null || true
  ip addr replace "$GW/$PREFIXLEN" dev "$BR"
  ip link set "$BR" up

  set_sysctl net.ipv4.ip_forward 1
  # ~6 inotify instances per systemd guest, all as root: 10 hosts overrun the default 128.
  set_sysctl fs.inotify.max_user_instances 1024 min

  ext=$(ip -4 route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") {print $(i + 1); exit}}')
  dns=$(dns_server)
  case "$dns" in ""|127.*|::1) die "the lab needs a non-loopback nameserver in /etc/resolv.conf (found '${dns}')" ;; esac
  mirror_ips=$(for h in "${MIRROR_HOSTS[@]}"; do getent ahostsv4 "$h" | awk '{print $1}'; done | sort -u | paste -sd, -)
  [ -n "$mirror_ips" ] || say "warning: cannot resolve ${MIRROR_HOSTS[*]}: hosts will have no apt"
  nft delete table ip "$NFT_TABLE" 2>/dev/null || true
  # Hosts may talk to each other (incl. VRRP multicast; bridged frames pass these hooks when
  # br_netfilter is on), reach the nameserver and the Debian mirror, answer this machine; nothing else.
  nft -f - <<EOF
table ip $NFT_TABLE {
  set mirror { type ipv4_addr; ${mirror_ips:+elements = { $mirror_ips }} }
  chain forward {
    type filter hook forward priority filter; policy accept;
    ip saddr $NET ip daddr { $NET, 224.0.0.0/4, 255.255.255.255 } accept
    ip saddr $NET ip daddr $dns meta l4proto { tcp, udp } th dport 53 accept
    ip saddr $NET ip daddr @mirror tcp dport { 80, 443 } accept
    ip daddr $NET ct state established,related accept
    ip saddr $NET drop
    ip daddr $NET drop
  }
  chain input {
    type filter hook input priority filter; policy accept;
    ip saddr $NET ct state established,related accept
    ip saddr $NET ip daddr $GW tcp dport { $SITE_PORTS } accept
    ip saddr $NET drop
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr $NET ip daddr != $NET oifname "$ext" masquerade
  }
}
EOF
}
net_down() {
  local fam t
  while read -r _ fam t; do
    case $t in "$NFT_TABLE"|"$NFT_PART"*) nft delete table "$fam" "$t" && say "nft table $fam $t removed" ;; esac
  done < <(nft list tables 2>/dev/null)
  if ip link show "$BR" >/dev/null 2>&1; then ip link del "$BR"; say "bridge $BR removed"; fi
  restore_sysctls
}

# ---- the lab directory: root-only; what down removes ------------------------------------------
# Everything in it is root's: the directory is 0700 (so is every subdirectory with keys or state),
# and each secret file is 0600, also when an older run left it readable.
SECRET_FILES=(kubeconfig outputs.json stack-config.json stack-config-worker-pool.json keys/id_ed25519)
secure_labdir() {
  install -d -m 700 "$LABDIR"; chmod 700 "$LABDIR"
  [ -e "$LABDIR/.hakube-lab" ] || echo "hakube lab directory (lab.sh down --purge removes it)" > "$LABDIR/.hakube-lab"
  local f d
  for d in keys hostkeys state pulumi run; do [ -d "$LABDIR/$d" ] && chmod 700 "$LABDIR/$d"; done
  for f in "${SECRET_FILES[@]}"; do [ -f "$LABDIR/$f" ] && chmod 600 "$LABDIR/$f"; done
  for f in "$HOSTKEYS"/* "$LABDIR"/state/*; do case $f in *.pub) ;; *) [ -f "$f" ] && chmod 600 "$f" ;; esac; done
  true
}
# The deploy's state and secrets describe hosts that are gone after down: removed with them.
DEPLOY_STATE=(kubeconfig outputs.json stack-config.json stack-config-worker-pool.json state pulumi)
drop_deploy_state() {
  local removed=() x
  for x in "${DEPLOY_STATE[@]}"; do
    if [ -e "$LABDIR/$x" ]; then rm -rf --one-file-system "${LABDIR:?}/$x"; removed+=("$x"); fi
  done
  if [ -e "$REPO/Pulumi.$PULUMI_STACK.yaml" ]; then rm -f "$REPO/Pulumi.$PULUMI_STACK.yaml"; removed+=("$REPO/Pulumi.$PULUMI_STACK.yaml"); fi
  if [ "${#removed[@]}" -gt 0 ]; then say "removed the deploy state and its secrets: ${removed[*]}"; fi
}
purge_labdir() {  # everything, the cache too; only a directory the lab made (marker file)
  [ -d "$LABDIR" ] || return 0
  [ -e "$LABDIR/.hakube-lab" ] || die "$LABDIR has no .hakube-lab marker: not removing it (remove it yourself if it is the lab's)"
  local size; size=$({ du -sh "$LABDIR" 2>/dev/null || true; } | cut -f1)
  rm -rf --one-file-system "${LABDIR:?}"
  say "purged $LABDIR ($size: base image, lab SSH key, host keys, logs)"
}
kept_summary() {
  local size; size=$({ du -sh "$LABDIR" 2>/dev/null || true; } | cut -f1)
  say "kept in $LABDIR ($size, root only, 0700): the base image, the lab SSH key and host keys (0600), logs;"
  say "  no secret of a deployed cluster. 'down --purge' removes the directory entirely."
}

# ---- keys ------------------------------------------------------------------------------------
ensure_keys() {
  local n
  install -d -m 700 "$LABDIR/keys" "$HOSTKEYS"
  [ -f "$KEY" ] || ssh-keygen -q -t ed25519 -N '' -C hakube-lab -f "$KEY"
  for n in "${NAMES[@]}"; do   # once per host name: stable across rebuilds
    [ -f "$HOSTKEYS/$n" ] || ssh-keygen -q -t ed25519 -N '' -C "root@$n" -f "$HOSTKEYS/$n"
  done
  node "$LAB_SRC/topology.cjs" config "$STACK_FILE" "$LABDIR" || die "cannot write stack-config.json"
}

# ---- hosts -----------------------------------------------------------------------------------
image_dir() { echo "$LABDIR/image/$("$LAB_SRC/build-image.sh" --name)"; }
mk_host() {  # NAME IMAGE: full copy of the base rootfs
  local n=$1 img=$2 d=$HOSTS/$1
  if [ -d "$d" ] && [ "$(cat "$RUN/$n.image" 2>/dev/null)" = "$(basename "$img")" ]; then return 0; fi
  rm -rf --one-file-system "$d" "$d.partial"
  cp -a "$img" "$d.partial"
  mv "$d.partial" "$d"
  basename "$img" > "$RUN/$n.image"
  # a new copy: whatever a deploy recorded about this host is gone (deploy.ts compares these)
  echo "$(date +%s%N)-$RANDOM" > "$RUN/$n.created"
}
configure_host() {  # NAME: per-host files, written before every boot
  local n=$1 d=$HOSTS/$1 ip=${ADDR[$1]} kv dns
  dns=$(dns_server)
  echo "$n" > "$d/etc/hostname"
  printf '127.0.0.1\tlocalhost\n%s\t%s\n' "$ip" "$n" > "$d/etc/hosts"
  cat > "$d/etc/systemd/network/10-host0.network" <<EOF
[Match]
Name=$IFACE
[Network]
Address=$ip/$PREFIXLEN
Gateway=$GW
DNS=$dns
LinkLocalAddressing=no
IPv6AcceptRA=no
EOF
  rm -f "$d/etc/resolv.conf"; echo "nameserver $dns" > "$d/etc/resolv.conf"
  install -m 600 "$HOSTKEYS/$n" "$d/etc/ssh/ssh_host_ed25519_key"
  install -m 644 "$HOSTKEYS/$n.pub" "$d/etc/ssh/ssh_host_ed25519_key.pub"
  install -d -m 700 "$d/root/.ssh"
  install -m 600 "$KEY.pub" "$d/root/.ssh/authorized_keys"
  # The kernel has no loadable modules (all built in): declare them so that `modprobe` succeeds.
  kv=$(uname -r); mkdir -p "$d/lib/modules/$kv"
  printf 'kernel/%s.ko\n' fs/overlayfs/overlay net/bridge/br_netfilter net/bridge/bridge \
    drivers/net/veth drivers/net/vxlan/vxlan net/netfilter/nf_conntrack net/netfilter/nf_nat \
    net/ipv4/netfilter/ip_tables net/ipv4/netfilter/iptable_nat net/ipv4/netfilter/iptable_filter \
    net/ipv4/ip_vs > "$d/lib/modules/$kv/modules.builtin"
  touch "$d/lib/modules/$kv/modules.order"
  chroot "$d" depmod "$kv" 2>/dev/null || true
  ch_prepare "$d"               # what containerd/kubelet need on this machine (container-host.sh)
}

# The launcher: moves itself into its own cgroup in every hierarchy (this machine's PID 1 is
# not systemd: nspawn runs --register=no --keep-unit and uses the cgroup it is started in),
# records those cgroups, then runs nspawn, again after a guest reboot (exit 133).
LAUNCHER='
n=$1 m=$2 d=$3 CG=$4 BR=$5 cgfile=$6 hn=$7 boot=$8
: > "$cgfile"
while IFS=: read -r _ ctrl path; do
  case $ctrl in "") dir=/sys/fs/cgroup/unified ;; name=systemd) dir=/sys/fs/cgroup/systemd ;; *) dir=/sys/fs/cgroup/${ctrl%%,*} ;; esac
  [ -d "$dir" ] || continue
  parent=$dir${path%/}/$CG; cg=$parent/$m
  mkdir -p "$cg"
  echo "$cg" >> "$cgfile"
  if [ "$ctrl" = cpuset ]; then   # cpuset children start empty
    for f in cpuset.cpus cpuset.mems; do cat "$dir${path%/}/$f" > "$parent/$f"; cat "$parent/$f" > "$cg/$f"; done
  fi
  echo $$ > "$cg/cgroup.procs"
done <<< "$(cat /proc/self/cgroup)"
while :; do
  echo "[hk-launcher] $(date -Is) boot $m"
  rc=0
  systemd-nspawn -q -D "$d" -M "$m" --hostname="$hn" --network-bridge="$BR" \
    --register=no --keep-unit --resolv-conf=off --link-journal=no --console=passive \
    --capability=all --system-call-filter="@keyring bpf" --kill-signal=SIGRTMIN+3 $boot || rc=$?
  echo "[hk-launcher] $(date -Is) nspawn exited rc=$rc"
  [ "$rc" -eq 133 ] || exit "$rc"
done
'
launch() {  # NAME: start its launcher (detached), record "pid starttime"
  local n=$1 m env=() pid
  m=$(mach "$n")
  running "$n" && return 0
  reap "$n"                                   # stale pid file / cgroups / orphans of a killed run
  configure_host "$n"
  # a host started again (after a crash or stop) keeps the mode it was created with, unless asked otherwise
  local sync=$SUPPRESS_SYNC
  [ -z "${HAKUBE_LAB_SUPPRESS_SYNC:-}" ] && [ -f "$RUN/$n.sync" ] && sync=$(cat "$RUN/$n.sync")
  [ "$sync" = 1 ] && env+=(SYSTEMD_SUPPRESS_SYNC=1)
  echo "$sync" > "$RUN/$n.sync"                 # how it runs: deploy checks it before Kubernetes
  echo "[hk-launcher] $(date -Is) starting $m" >> "$LOGS/$n.log"
  setsid env "${env[@]}" bash -c "$LAUNCHER" hk-launcher "$n" "$m" "$HOSTS/$n" "$CG" "$BR" "$RUN/$n.cgroups" "$n" "$(ch_boot_args)" \
    >> "$LOGS/$n.log" 2>&1 < /dev/null 9>&- &
  pid=$!
  echo "$pid $(proc_start "$pid")" > "$RUN/$n.pid"
}
reapply_faults() {  # NAME: a rebooted host stays unplugged / partitioned, like a real one
  local n=$1 v end
  [ -f "$RUN/$n.unplugged" ] || [ -f "$RUN/$n.partitioned" ] || return 0
  v=$(veth "$n"); end=$((SECONDS + 30))
  until ip link show "$v" >/dev/null 2>&1; do [ $SECONDS -lt $end ] || return 0; sleep 0.1; done
  [ -f "$RUN/$n.unplugged" ] && ip link set "$v" down
  [ -f "$RUN/$n.partitioned" ] && partition "$n"
  return 0
}
cut_off() { [ -f "$RUN/$1.unplugged" ] || [ -f "$RUN/$1.partitioned" ]; }
wait_ssh() {  # NAME [timeout]: ssh answers (with the host key from known_hosts)
  local n=$1 t=${2:-$SSH_TIMEOUT} end
  end=$((SECONDS + t))
  until ssh "${SSH_OPTS[@]}" -o ConnectTimeout=2 "root@${ADDR[$n]}" true 2>/dev/null; do
    [ $SECONDS -lt $end ] || { say "$n: no ssh after ${t}s (log: $LOGS/$n.log)"; return 1; }
    running "$n" || { say "$n: exited while booting (log: $LOGS/$n.log)"; tail -5 "$LOGS/$n.log" >&2; return 1; }
    sleep 0.25
  done
}
partition() {
  local n=$1 v; v=$(veth "$n")
  nft delete table netdev "$NFT_PART$n" 2>/dev/null || true
  nft -f - <<EOF
table netdev $NFT_PART$n {
  chain in  { type filter hook ingress device "$v" priority 0; policy drop; }
  chain out { type filter hook egress  device "$v" priority 0; policy drop; }
}
EOF
}
stop_hosts() {  # NAME...: clean poweroff in parallel (SIGTERM to nspawn = SIGRTMIN+3 to PID 1)
  local n p
  for n in "$@"; do p=$(nspawn_of "$n") && kill -TERM "$p" 2>/dev/null || true; done
  for n in "$@"; do wait_gone "$n" 60; done
}
all_names() {  # topology hosts plus anything an earlier run left (other topology)
  { printf '%s\n' "${NAMES[@]}"
    for f in "$RUN"/*.pid "$RUN"/*.cgroups "$RUN"/*.image; do [ -e "$f" ] && basename "${f%.*}"; done
    for d in "$HOSTS"/*; do [ -d "$d" ] && basename "${d%.partial}"; done
    true
  } 2>/dev/null | sort -u
}

lock() {  # serialize up/down/start/stop (fd 9 is closed in the launchers)
  mkdir -p "$RUN"; exec 9> "$RUN/lock"
  if ! flock -n 9; then
    say "waiting for another lab command (or the leftovers of a killed one) to finish..."
    flock -w 600 9 || die "another lab command still holds $RUN/lock"
  fi
}
need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

# ---- commands --------------------------------------------------------------------------------
cmd_up() {
  local fresh=0 t_all t n img pids=() failed=0 img_ms
  [ "${1:-}" = --fresh ] && fresh=1
  t_all=$(now_ms)
  load_topology stack
  secure_labdir
  mkdir -p "$HOSTS" "$RUN" "$LOGS"
  lock
  t=$(now_ms)
  "$LAB_SRC/build-image.sh" || die "base image build failed"
  img=$(image_dir); img_ms=$(( $(now_ms) - t ))
  say "base image $(basename "$img") ready ($(secs_since "$t") s)"
  # hosts of an earlier topology that are not in this one: stop them
  for n in $(all_names); do
    [ -n "${ADDR[$n]:-}" ] && continue
    say "$n is not in the topology any more: removing it"
    stop_hosts "$n"; rm -rf --one-file-system "${HOSTS:?}/$n" "$HOSTS/$n.partial"
    rm -f "$RUN/$n".*
  done
  echo "$TOPOLOGY_TSV" > "$RUN/topology.tsv"
  ensure_keys
  net_up

  t=$(now_ms)
  for n in "${NAMES[@]}"; do
    if running "$n"; then say "$n: already running (kept)"; continue; fi
    if [ "$fresh" = 1 ]; then rm -rf --one-file-system "${HOSTS:?}/$n"; rm -f "$RUN/$n.image"; fi
    mk_host "$n" "$img" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  [ "$failed" = 0 ] || die "creating host root filesystems failed"
  say "root filesystems ready ($(secs_since "$t") s)"

  t=$(now_ms)
  for n in "${NAMES[@]}"; do launch "$n"; done
  pids=()
  for n in "${NAMES[@]}"; do
    ( reapply_faults "$n"
      if cut_off "$n"; then say "$n: unplugged/partitioned: not waiting for ssh"; exit 0; fi
      wait_ssh "$n" && echo "lab: $n ssh ready after $(secs_since "$t") s" >&2 ) &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  [ "$failed" = 0 ] || die "some hosts did not come up (logs in $LOGS)"
  say "${#NAMES[@]} hosts up: ssh ready on all after $(secs_since "$t") s; whole up $(secs_since "$t_all") s (image $((img_ms / 1000)) s)"
  say "stack config: $LABDIR/stack-config.json"
  if [ "$SITE" = 1 ]; then "$LAB_SRC/site.sh" up || die "the site services did not start (HAKUBE_LAB_SITE=0 boots the hosts without them)"; fi
}

cmd_down() {
  local t n names p purge=0
  case "${1:-}" in --purge) purge=1 ;; "") ;; *) die "down: unknown option $1 (--purge)" ;; esac
  t=$(now_ms)
  secure_labdir
  mkdir -p "$RUN"; lock
  LOAD_SOFT=1 load_topology auto 2>/dev/null || say "warning: cannot read the topology: stopping what the lab recorded"
  names=$(all_names)
  # shellcheck disable=SC2086
  stop_hosts $names
  say "hosts stopped ($(secs_since "$t") s)"
  local pids=()
  for n in $names; do
    rm -rf --one-file-system "${HOSTS:?}/$n" "$HOSTS/$n.partial" &
    pids+=($!)
    rm -f "$RUN/$n".*
  done
  for p in "${pids[@]}"; do wait "$p" || say "warning: could not remove every host root filesystem"; done
  "$LAB_SRC/site.sh" down
  net_down
  rm -f "$RUN/topology.tsv"
  drop_deploy_state
  if [ "$purge" = 1 ]; then exec 9>&-; purge_labdir; say "down --purge ($(secs_since "$t") s)"
  else say "down ($(secs_since "$t") s)"; kept_summary; fi
}

vip_holders() {  # the running hosts that carry the VIP (root: looks into each host's netns)
  local n p
  [ -n "$VIP" ] || return 0
  for n in "${NAMES[@]}"; do
    p=$(pid1_of "$n" 2>/dev/null) || continue
    nsenter -t "$p" -n ip -4 -o addr show 2>/dev/null | grep -q " $VIP/" && echo "$n"
  done
  true
}
cmd_status() {
  local n state flags holders=""
  load_topology auto
  [ "$(id -u)" = 0 ] && holders=" $(vip_holders | tr '\n' ' ')"
  printf '%-9s %-12s %-14s %-8s %-14s %s\n' NAME MACHINE ADDRESS STATE ROLES NOTES
  for n in "${NAMES[@]}"; do
    state=stopped; running "$n" && state=running
    flags=""
    [ -f "$RUN/$n.unplugged" ] && flags+="unplugged "
    [ -f "$RUN/$n.partitioned" ] && flags+="partitioned "
    [ -d "$HOSTS/$n" ] || flags+="no-rootfs "
    case "$holders" in *" $n "*) flags+="holds-VIP " ;; esac
    printf '%-9s %-12s %-14s %-8s %-14s %s\n' "$n" "$(mach "$n")" "${ADDR[$n]}" "$state" "${ROLES[$n]:--}" "$flags"
  done
  if [ -n "$VIP" ]; then
    local held
    if [ "$(id -u)" != 0 ]; then held="holder: run as root to see it"
    else
      held=$(echo $holders)
      case $(echo "$held" | wc -w) in 0) held="held by no host" ;; 1) held="held by $held" ;; *) held="held by $held (more than one: split brain)" ;; esac
    fi
    echo "VIP $VIP:$VIP_PORT $held (keepalived interface $IFACE); bridge $BR $GW/$PREFIXLEN $(ip link show "$BR" >/dev/null 2>&1 && echo up || echo absent)"
  fi
}

cmd_mem() {  # PSS of the host's processes and its memory cgroup usage
  local n p1 pidns pids pss v mcg use
  load_topology auto
  for n in "${NAMES[@]}"; do
    p1=$(pid1_of "$n") || { printf '%-9s stopped\n' "$n"; continue; }
    pidns=$(ps -o pidns= -p "$p1")
    pids=$(ps -e -o pid=,pidns= | awk -v ns="$pidns" '$2 == ns {print $1}')
    pss=0; for p in $pids; do v=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null); pss=$((pss + ${v:-0})); done
    mcg=$(awk -F: '$2=="memory"{print $3}' "/proc/$p1/cgroup")
    use=$(cat "/sys/fs/cgroup/memory$mcg/memory.usage_in_bytes" 2>/dev/null || echo 0)
    printf '%-9s procs=%-3s PSS=%4d MiB  memcg=%4d MiB\n' "$n" "$(echo $pids | wc -w)" $((pss / 1024)) $((use / 1048576))
  done
}

# ---- deploy: the dev stack onto the lab hosts ---------------------------------------------------
PULUMI_STACK=lab
PULUMI_BACKEND_DIR=$LABDIR/pulumi
LAB_PASSPHRASE=hakube-lab-not-a-secret   # the lab stack holds only lab keys; PULUMI_CONFIG_PASSPHRASE overrides it
generation() {  # which copies of the host root filesystems run (up writes run/<name>.created per new copy)
  local n
  for n in "${NAMES[@]}"; do echo "$n=$(cat "$RUN/$n.created" 2>/dev/null || echo '?')"; done | sha256sum | cut -c1-16
}
pulumi_env() {
  install -d -m 700 "$PULUMI_BACKEND_DIR"
  export PULUMI_BACKEND_URL="file://$PULUMI_BACKEND_DIR"
  export PULUMI_CONFIG_PASSPHRASE=${PULUMI_CONFIG_PASSPHRASE:-$LAB_PASSPHRASE}
  export PULUMI_SKIP_UPDATE_CHECK=1
  cd "$REPO"
}
print_usage_after_deploy() {
  cat >&2 <<EOF

lab: kubeconfig: $LABDIR/kubeconfig (mode 0600, root's). To use it as yourself:
  mkdir -p ~/.kube && (umask 077 && sudo cat $LABDIR/kubeconfig > ~/.kube/hakube-lab)
  KUBECONFIG=~/.kube/hakube-lab kubectl get nodes
It points at the VIP (https://$VIP:$VIP_PORT), reachable from this machine only; the site's kubectl:
  $("$LAB_SRC/toolchain/build.sh" --path)/bin/kubectl --kubeconfig $LABDIR/kubeconfig get nodes
Tear down: sudo npm run lab -- down   (removes the hosts, and with them the deploy state and its
secrets: kubeconfig, outputs.json, state/; the image cache stays: 'down --purge' removes it too)
EOF
}
deploy_pulumi() {  # ENGINE: pulumi up of stack "lab" (file backend in the lab directory)
  local engine=$1 gen stackfile=$REPO/Pulumi.$PULUMI_STACK.yaml rc=0
  pulumi_env
  gen=$(generation)
  if pulumi stack select "$PULUMI_STACK" >/dev/null 2>&1 \
     && [ "$(cat "$PULUMI_BACKEND_DIR/$PULUMI_STACK.generation" 2>/dev/null)" != "$gen" ]; then
    say "the lab hosts were created anew since the last 'pulumi up': removing the stale stack '$PULUMI_STACK' (its resources are gone)"
    pulumi stack rm "$PULUMI_STACK" --force --yes >&2 || die "pulumi stack rm $PULUMI_STACK failed"
    rm -f "$stackfile"
  fi
  if ! pulumi stack select "$PULUMI_STACK" >/dev/null 2>&1; then
    rm -f "$stackfile"
    pulumi stack init "$PULUMI_STACK" --secrets-provider passphrase >&2 \
      || die "pulumi stack init $PULUMI_STACK failed (backend $PULUMI_BACKEND_URL)"
  fi
  node "$LAB_SRC/topology.cjs" stack-file "$STACK_FILE" "$LABDIR" "$stackfile" ${engine:+--engine "$engine"} \
    || die "cannot write $stackfile"
  pulumi config set --stack "$PULUMI_STACK" --secret hakube:sshPrivateKey < "$KEY" >&2 \
    || die "pulumi config set --secret hakube:sshPrivateKey failed"
  say "pulumi up --stack $PULUMI_STACK (backend $PULUMI_BACKEND_URL, config $stackfile)"
  pulumi up --stack "$PULUMI_STACK" --yes --skip-preview >&2 || rc=$?
  echo "$gen" > "$PULUMI_BACKEND_DIR/$PULUMI_STACK.generation"   # the state describes these hosts now
  if [ "$rc" != 0 ]; then
    say "pulumi up failed (exit $rc). Without the command/tls/random provider plugins (the Go proxy serves"
    say "none of them here: docs/airgap.md) the engine cannot register a resource;"
    say "'npm run lab -- deploy --harness' runs every command of the stack through the realizing harness."
    exit "$rc"
  fi
  pulumi stack output --stack "$PULUMI_STACK" >&2 || true
  ( umask 077; pulumi stack output --stack "$PULUMI_STACK" kubeconfig --show-secrets > "$LABDIR/kubeconfig" ) \
    || say "warning: could not read the kubeconfig output"
  print_usage_after_deploy
}
cmd_deploy() {
  local engine="" harness=0 args=() a comps="hosts,pki,etcd,lb,controlplane,workers" n
  while [ $# -gt 0 ]; do
    a=$1; shift
    case $a in
      --engine) engine=${1:?--engine needs haproxy or nginx}; shift; args+=(--engine "$engine") ;;
      --harness) harness=1 ;;
      --components) comps=${1:?--components needs a list}; args+=(--components "$comps"); shift; harness=1 ;;
      --fresh) args+=(--fresh) ;;
      *) die "deploy: unknown option $a (options: --engine haproxy|nginx, --harness, --components LIST, --fresh)" ;;
    esac
  done
  # Kubernetes needs the hosts' fsyncs: under SYSTEMD_SUPPRESS_SYNC nspawn fails open(O_SYNC) with
  # EINVAL, and containerd's image ingest opens files so. Hosts booted for Kubernetes keep them.
  local kube=0
  case ",$comps," in *,controlplane,*|*,workers,*) kube=1 ;; esac
  [ "$kube" = 1 ] && [ -z "${HAKUBE_LAB_SUPPRESS_SYNC:-}" ] && SUPPRESS_SYNC=0
  cmd_up                        # boots what is not running; running hosts are kept
  exec 9>&-                     # release the lab lock: faults may be injected while deploying
  load_topology auto
  if [ "$kube" = 1 ]; then
    for n in "${NAMES[@]}"; do
      [ "$(cat "$RUN/$n.sync" 2>/dev/null || echo 1)" = 0 ] \
        || die "$n runs with fsync suppressed (HAKUBE_LAB_SUPPRESS_SYNC=1): containerd cannot pull images there (open with O_SYNC fails with EINVAL). 'sudo npm run lab -- down', then deploy again (hosts boot with their fsyncs for Kubernetes)"
    done
  fi
  if [ "$harness" = 0 ] && command -v pulumi >/dev/null; then
    say "deploying $(basename "$STACK_FILE") with the Pulumi CLI ($(pulumi version 2>/dev/null || echo '?'))"
    deploy_pulumi "$engine"
  else
    if [ "$harness" = 1 ]; then say "deploying through the realizing harness (--harness)"
    else say "no Pulumi CLI on this machine: deploying through the realizing harness instead (test/lab/deploy.ts)"; fi
    [ -x "$REPO/node_modules/.bin/tsx" ] || die "node_modules/.bin/tsx is missing: run 'npm ci' in $REPO"
    ( cd "$REPO" && "$REPO/node_modules/.bin/tsx" "$LAB_SRC/deploy.ts" "${args[@]}" ) || die "deploy failed"
    print_usage_after_deploy
  fi
}
pulumi_resources() {  # how many resources the Pulumi CLI's lab stack holds (0 without the CLI or the stack)
  command -v pulumi >/dev/null || { echo 0; return; }
  ( pulumi_env && pulumi stack export --stack "$PULUMI_STACK" 2>/dev/null ) \
    | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{console.log((JSON.parse(s).deployment.resources||[]).length)}catch{console.log(0)}})'
}
cmd_destroy() {
  local harness=0 a
  for a in "$@"; do
    case $a in --harness) harness=1 ;; *) die "destroy: unknown option $a (options: --harness)" ;; esac
  done
  load_topology auto
  if [ "$harness" = 0 ] && [ "$(pulumi_resources)" -gt 0 ]; then
    pulumi_env
    pulumi destroy --stack "$PULUMI_STACK" --yes >&2 || die "pulumi destroy failed"
  elif [ -f "$LABDIR/state/dev.json" ]; then
    say "destroying through the realizing harness (the state of the last harness deploy): every delete script runs, dependents first"
    [ -x "$REPO/node_modules/.bin/tsx" ] || die "node_modules/.bin/tsx is missing: run 'npm ci' in $REPO"
    ( cd "$REPO" && "$REPO/node_modules/.bin/tsx" "$LAB_SRC/deploy.ts" --destroy ) || die "destroy failed (what could not be deleted stays in $LABDIR/state/dev.json)"
  else
    die "nothing to destroy: no Pulumi stack '$PULUMI_STACK' and no harness state ($LABDIR/state/dev.json); the hosts go with 'lab down'"
  fi
  rm -f "$LABDIR/kubeconfig" "$LABDIR/outputs.json"
  say "destroyed: the hosts keep running without hakube's services ('lab down' removes them)"
}

# sourced (the tests of lab.sh's functions): define everything, run nothing
if [ "${BASH_SOURCE[0]}" != "$0" ]; then return 0; fi

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
cmd=${1:-}; shift || true
case "$cmd" in
  deploy) need_root; cmd_deploy "$@" ;;
  destroy) need_root; cmd_destroy "$@" ;;
  up) need_root; cmd_up "$@" ;;
  down) need_root; cmd_down "$@" ;;
  status) cmd_status ;;
  mem) need_root; cmd_mem ;;
  config) [ -f "$LABDIR/stack-config.json" ] || die "no $LABDIR/stack-config.json yet: run 'lab up'"; echo "$LABDIR/stack-config.json" ;;
  build) need_root; "$LAB_SRC/build-image.sh" "$@" ;;
  toolchain) need_root; "$LAB_SRC/toolchain/build.sh" "$@" ;;
  site) need_root; "$LAB_SRC/site.sh" "$@" ;;
  ssh)
    load_topology auto; n=$(host_arg "${1:-}"); shift
    exec ssh "${SSH_OPTS[@]}" "root@${ADDR[$n]}" "$@" ;;
  exec)
    need_root; load_topology auto; n=$(host_arg "${1:-}"); shift
    [ $# -gt 0 ] || die "usage: lab exec NAME cmd..."
    p=$(pid1_of "$n") || die "$n is not running"
    exec nsenter -t "$p" -a "$@" ;;
  crash)
    need_root; load_topology auto; n=$(host_arg "${1:-}")
    p=$(pid1_of "$n") || die "$n is not running"
    kill -KILL "$p"            # ends its whole PID namespace; nspawn and the launcher exit
    wait_gone "$n" 30; say "$n crashed" ;;
  stop) need_root; load_topology auto; n=$(host_arg "${1:-}"); lock; stop_hosts "$n"; say "$n stopped" ;;
  start)
    need_root; load_topology auto; n=$(host_arg "${1:-}"); lock
    [ -d "$HOSTS/$n" ] || die "$n has no root filesystem: run 'lab up'"
    ip link show "$BR" >/dev/null 2>&1 || die "no bridge $BR: run 'lab up'"
    t=$(now_ms); launch "$n"; exec 9>&-; reapply_faults "$n"
    if cut_off "$n"; then say "$n started (unplugged/partitioned: not waiting for ssh)"
    else wait_ssh "$n" || die "$n did not come up"; say "$n up: ssh after $(secs_since "$t") s"; fi ;;
  unplug|plug)
    need_root; load_topology auto; n=$(host_arg "${1:-}")
    if [ "$cmd" = unplug ]; then touch "$RUN/$n.unplugged"; else rm -f "$RUN/$n.unplugged"; fi
    if running "$n"; then ip link set "$(veth "$n")" "$([ "$cmd" = unplug ] && echo down || echo up)"; fi ;;
  partition)
    need_root; load_topology auto; n=$(host_arg "${1:-}")
    touch "$RUN/$n.partitioned"; running "$n" && partition "$n"; true ;;
  heal)
    need_root; load_topology auto; n=$(host_arg "${1:-}")
    rm -f "$RUN/$n.partitioned"; nft delete table netdev "$NFT_PART$n" 2>/dev/null || true ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 1 ;;
esac
