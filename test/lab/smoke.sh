#!/usr/bin/env bash
# smoke.sh: self-test of a running hakube lab (run `lab.sh up` first; run as root).
# Prints PASS/FAIL lines with timings; exits 1 if anything failed. Leaves the hosts as it found
# them (keepalived stopped and unconfigured, every host running, no fault injected).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LABDIR=${HAKUBE_LAB_DIR:-/var/lib/hakube-lab}
lab() { bash "$HERE/lab.sh" "$@"; }

fails=0; passes=0
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
ms_since() { echo $(( $(now_ms) - $1 )); }
ok() { echo "PASS $*"; passes=$((passes + 1)); }
ko() { echo "FAIL $*"; fails=$((fails + 1)); }
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then ok "$what"; else ko "$what"; fi; }
T0=$(now_ms)

[ "$(id -u)" = 0 ] || { echo "smoke: must run as root" >&2; exit 2; }
command -v ping >/dev/null || { echo "smoke: needs ping (apt-get install iputils-ping)" >&2; exit 2; }
TOPO=$LABDIR/run/topology.tsv
[ -s "$TOPO" ] || { ko "lab is up (no $TOPO: run 'lab.sh up')"; exit 1; }
NAMES=(); declare -A ADDR=(); VIP=""; LBS=()
while IFS=$'\t' read -r kind a b c; do
  case $kind in
    host) NAMES+=("$a"); ADDR[$a]=$b; [[ ",$c," == *,loadbalancer,* ]] && LBS+=("$a") ;;
    vip) VIP=$a ;;
  esac
done < "$TOPO"

# ---- every host running ------------------------------------------------------------------------
st=$(lab status)
down=$(echo "$st" | awk '$2 ~ /^hk-/ && $4 != "running" {print $1}' | xargs)
[ -z "$down" ] && ok "lab status: all ${#NAMES[@]} hosts running" || ko "lab status: not running: $down"

# ---- per host: systemd, hostname, baked packages present but not enabled/started ---------------
HOST_CHECKS='
n=$1
r() { if eval "$2" >/dev/null 2>&1; then echo "ok $1"; else echo "bad $1"; fi; }
s=$(timeout 60 systemctl is-system-running --wait 2>/dev/null)
[ "$s" = running ] && echo "ok systemctl is-system-running=running" \
  || echo "bad systemctl is-system-running=$s (failed: $(systemctl --failed --no-legend --plain | cut -d" " -f1 | xargs))"
r "PID 1 is systemd" "[ \"\$(cat /proc/1/comm)\" = systemd ]"
r "hostname is $n" "[ \"\$(hostname)\" = $n ] && [ \"\$(cat /etc/hostname)\" = $n ]"
r "binaries etcd etcdctl haproxy nginx keepalived" "command -v etcd etcdctl haproxy nginx keepalived"
for u in etcd haproxy nginx keepalived; do
  r "$u.service inactive+disabled" "[ \"\$(systemctl is-active $u)\" = inactive ] && [ \"\$(systemctl is-enabled $u)\" = disabled ]"
done
r "no etcd process, no etcd data" "! pgrep -x etcd && [ -z \"\$(ls -A /var/lib/etcd)\" ]"
r "haproxy -v" "haproxy -v | grep -q \"^HAProxy version 2\\.\""
r "nginx -V: stream module available" "nginx -V 2>&1 | grep -q -- --with-stream=dynamic && [ -f /usr/lib/nginx/modules/ngx_stream_module.so ] && ls /etc/nginx/modules-enabled/*stream*"
r "nginx -t" "nginx -t"
r "keepalived -v" "keepalived -v 2>&1 | grep -q \"^Keepalived v2\\.\""
r "etcd --version" "etcd --version | grep -q \"^etcd Version: 3\\.\""
r "sftp-server present" "[ -x /usr/lib/openssh/sftp-server ]"
r "modprobe overlay br_netfilter (builtins declared)" "modprobe overlay && modprobe br_netfilter"
'
t=$(now_ms); tmp=$(mktemp -d)
for n in "${NAMES[@]}"; do
  lab ssh "$n" bash -s -- "$n" <<< "$HOST_CHECKS" > "$tmp/$n" 2>&1 &
done
wait
for n in "${NAMES[@]}"; do
  good=$(grep -c '^ok ' "$tmp/$n"); bad=$(grep '^bad \|^[^o]' "$tmp/$n" | sed 's/^bad //' | paste -sd';' -)
  if [ -z "$bad" ] && [ "$good" -ge 16 ]; then ok "$n: $good checks (systemd running, hostname, ssh strict host key, services inactive+disabled, versions)"
  else ko "$n: $bad"; fi
done
rm -rf "$tmp"
echo "     (per-host checks on ${#NAMES[@]} hosts in parallel: $(ms_since "$t") ms)"
n1=${NAMES[0]}
echo "     versions on $n1: $(lab ssh "$n1" 'echo "haproxy $(haproxy -v | head -1 | cut -d" " -f3), nginx $(nginx -v 2>&1 | cut -d/ -f2), keepalived $(keepalived -v 2>&1 | head -1 | cut -d" " -f2), etcd $(etcd --version | head -1 | cut -d" " -f3)"')"

# ---- ssh host keys: strict checking, stable keys, stack-config.json -------------------------------
t=$(now_ms)
lab ssh "$n1" true && ok "ssh $n1 with StrictHostKeyChecking=yes against $LABDIR/known_hosts ($(ms_since "$t") ms round trip)" \
  || ko "strict ssh to $n1"
if [ "${#NAMES[@]}" -ge 2 ]; then
  n2=${NAMES[1]}; bad_kh=$(mktemp)
  echo "${ADDR[$n1]} $(cut -d' ' -f1-2 "$LABDIR/hostkeys/$n2.pub")" > "$bad_kh"
  if ssh -F /dev/null -i "$LABDIR/keys/id_ed25519" -o BatchMode=yes -o StrictHostKeyChecking=yes \
       -o UserKnownHostsFile="$bad_kh" -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=3 "root@${ADDR[$n1]}" true 2>/dev/null; then
    ko "ssh accepted a wrong host key for $n1"
  else ok "ssh refuses $n1 when known_hosts holds another key (strict checking is real)"; fi
  rm -f "$bad_kh"
fi
mism=""
for n in "${NAMES[@]}"; do
  served=$(ssh-keyscan -t ed25519 -T 3 "${ADDR[$n]}" 2>/dev/null | awk '{print $2" "$3}')
  cached=$(cut -d' ' -f1-2 "$LABDIR/hostkeys/$n.pub")
  [ -n "$served" ] && [ "$served" = "$cached" ] || mism+="$n "
done
[ -z "$mism" ] && ok "every host serves its cached host key ($LABDIR/hostkeys/<name>.pub)" || ko "host key differs from the cache: $mism"
if node - "$LABDIR" "$TOPO" <<'EOF'
const fs = require('fs'); const cp = require('child_process');
const [dir, topo] = process.argv.slice(2);
const c = JSON.parse(fs.readFileSync(`${dir}/stack-config.json`, 'utf8'));
const want = ['hakube:hosts', 'hakube:strictHostKeys', 'hakube:sshPrivateKey'];
const assert = (cond, msg) => { if (!cond) { console.error(msg); process.exit(1); } };
assert(JSON.stringify(Object.keys(c).sort()) === JSON.stringify(want.sort()), `keys: ${Object.keys(c)}`);
assert(Object.values(c).every((v) => typeof v === 'string'), 'all values must be strings');
assert(c['hakube:strictHostKeys'] === 'true', 'strictHostKeys');
const hosts = JSON.parse(c['hakube:hosts']);
const rows = fs.readFileSync(topo, 'utf8').split('\n').filter((l) => l.startsWith('host\t')).map((l) => l.split('\t'));
assert(hosts.length === rows.length, 'host count');
hosts.forEach((h, i) => {
  const [, name, addr, roles] = rows[i];
  assert(h.name === name && h.address === addr && h.roles.join(',') === roles, `host ${i}`);
  assert(/^ssh-ed25519 [A-Za-z0-9+/]+=*$/.test(h.hostKey), `hostKey of ${name}: ${h.hostKey}`);
  const kh = fs.readFileSync(`${dir}/known_hosts`, 'utf8');
  assert(kh.includes(`${addr} ${h.hostKey}\n`), `known_hosts lacks ${name}`);
});
const pk = c['hakube:sshPrivateKey'];
assert(pk.startsWith('-----BEGIN OPENSSH PRIVATE KEY-----\n'), 'private key PEM');
const tmp = fs.mkdtempSync('/tmp/hk-smoke-');
fs.writeFileSync(`${tmp}/k`, pk, { mode: 0o600 });
const pub = cp.execFileSync('ssh-keygen', ['-y', '-f', `${tmp}/k`]).toString().trim();
fs.rmSync(tmp, { recursive: true });
assert(fs.readFileSync(`${dir}/keys/id_ed25519.pub`, 'utf8').startsWith(pub), 'private key is not the lab key');
EOF
then ok "stack-config.json: hakube:hosts (with hostKey), strictHostKeys, sshPrivateKey as Pulumi config strings"
else ko "stack-config.json format"; fi

# ---- VIP failover with a throwaway keepalived config ---------------------------------------------
holders() {  # which LB hosts hold the VIP (via nsenter: works while they are cut off)
  local n out=""
  for n in "$LB1" "$LB2"; do
    lab exec "$n" ip -4 -o addr show dev host0 2>/dev/null | grep -q " $VIP/" && out+="$n "
  done
  echo "${out% }"
}
wait_holders() {  # expected timeout_s
  local end=$(( $(date +%s) + $2 ))
  until [ "$(holders)" = "$1" ]; do [ "$(date +%s)" -lt "$end" ] || return 1; sleep 0.05; done
}
wait_holds() {  # host timeout_s  (host holds it, whatever the other one does)
  local end=$(( $(date +%s) + $2 ))
  until [[ " $(holders) " == *" $1 "* ]]; do [ "$(date +%s)" -lt "$end" ] || return 1; sleep 0.05; done
}
ka_conf() {  # host priority
  lab ssh "$1" "cat > /etc/keepalived/keepalived.conf" <<EOF
# hakube lab smoke test (throwaway)
global_defs { router_id $1 }
vrrp_instance HKLAB_SMOKE {
  state BACKUP
  interface host0
  virtual_router_id 51
  priority $2
  advert_int 1
  virtual_ipaddress { $VIP/24 dev host0 }
}
EOF
}
reachable() { ping -c1 -W1 "$1" >/dev/null 2>&1; }
cleanup_vip() {
  local n
  for n in "$LB1" "$LB2"; do
    lab heal "$n" 2>/dev/null; lab plug "$n" 2>/dev/null
    lab status | awk -v n="$n" '$1 == n && $4 != "running" {exit 1}' || lab start "$n" >/dev/null 2>&1
    lab ssh "$n" 'systemctl stop keepalived; rm -f /etc/keepalived/keepalived.conf; systemctl reset-failed keepalived 2>/dev/null; true'
  done
}
FAILOVER=""
if [ "${#LBS[@]}" -lt 2 ] || [ -z "$VIP" ]; then
  ko "VIP failover: needs two loadbalancer hosts and hakube:loadBalancer.vip in the stack"
else
  LB1=${LBS[0]} LB2=${LBS[1]}
  trap 'cleanup_vip' EXIT
  ka_conf "$LB1" 150 && ka_conf "$LB2" 100
  t=$(now_ms)
  lab ssh "$LB1" systemctl start keepalived && lab ssh "$LB2" systemctl start keepalived
  wait_holders "$LB1" 20 && ok "keepalived ($LB1 prio 150, $LB2 prio 100, advert 1 s): VIP $VIP on $LB1 only after $(ms_since "$t") ms" \
    || ko "VIP initially: holders '$(holders)'"
  check "VIP $VIP answers ping from this machine" reachable "$VIP"

  t=$(now_ms); lab ssh "$LB1" systemctl stop keepalived
  if wait_holders "$LB2" 20; then d=$(ms_since "$t"); FAILOVER+="keepalived stop ${d} ms; "; ok "failover (keepalived stopped on $LB1): VIP on $LB2 only after $d ms"
  else ko "failover after keepalived stop: holders '$(holders)'"; fi
  t=$(now_ms); lab ssh "$LB1" systemctl start keepalived
  wait_holders "$LB1" 20 && ok "preempt: VIP back on $LB1 only after $(ms_since "$t") ms" || ko "preempt back: holders '$(holders)'"

  # crash + start
  t=$(now_ms); lab crash "$LB1" >/dev/null 2>&1
  if wait_holders "$LB2" 20; then d=$(ms_since "$t"); FAILOVER+="crash ${d} ms; "; ok "failover (crash $LB1: SIGKILL of PID 1): VIP on $LB2 after $d ms"
  else ko "failover after crash: holders '$(holders)'"; fi
  lab status | awk -v n="$LB1" '$1 == n {exit ($4 != "stopped")}' && ok "status shows crashed $LB1 stopped" || ko "status after crash"
  t=$(now_ms)
  if lab start "$LB1" >/dev/null; then
    ok "start crashed $LB1: ssh (strict host key) after $(ms_since "$t") ms"
    check "$LB1 after crash: systemd running, hostname, keepalived not started (disabled)" \
      lab ssh "$LB1" "systemctl is-system-running --wait | grep -qx running && [ \"\$(hostname)\" = $LB1 ] && ! systemctl is-active keepalived"
  else ko "start crashed $LB1"; fi
  t=$(now_ms); lab ssh "$LB1" systemctl start keepalived
  wait_holders "$LB1" 20 && ok "keepalived started on $LB1 again: VIP back after $(ms_since "$t") ms" || ko "VIP back after restart: holders '$(holders)'"

  # unplug / plug
  t=$(now_ms); lab unplug "$LB1"
  if wait_holders "$LB2" 20; then d=$(ms_since "$t"); FAILOVER+="unplug ${d} ms; "; ok "failover (unplug $LB1: veth down): VIP on $LB2 only after $d ms"
  else ko "failover after unplug: holders '$(holders)'"; fi
  reachable "${ADDR[$LB1]}" && ko "unplugged $LB1 still answers ping" || ok "unplugged $LB1 does not answer ping"
  t=$(now_ms); lab plug "$LB1"
  wait_holders "$LB1" 30 && ok "plug $LB1: VIP back on $LB1 only after $(ms_since "$t") ms" || ko "plug: holders '$(holders)'"
  check "plugged $LB1 answers ping and ssh" lab ssh "$LB1" true

  # partition / heal
  t=$(now_ms); lab partition "$LB1"
  if wait_holds "$LB2" 20; then d=$(ms_since "$t"); FAILOVER+="partition ${d} ms"; ok "partition $LB1: $LB2 takes the VIP after $d ms (holders: $(holders); split brain expected)"
  else ko "partition: holders '$(holders)'"; fi
  reachable "${ADDR[$LB1]}" && ko "partitioned $LB1 still answers ping" || ok "partitioned $LB1 does not answer ping"
  check "lab exec works on partitioned $LB1" lab exec "$LB1" systemctl is-active keepalived
  t=$(now_ms); lab heal "$LB1"
  wait_holders "$LB1" 30 && ok "heal $LB1: VIP on $LB1 only after $(ms_since "$t") ms" || ko "heal: holders '$(holders)'"
  check "healed $LB1 answers ssh" lab ssh "$LB1" true

  trap - EXIT
  cleanup_vip
  t=$(now_ms); wait_holders "" 10 && ok "keepalived stopped and unconfigured on $LB1 $LB2: VIP gone ($(ms_since "$t") ms)" || ko "VIP left: '$(holders)'"
  check "$LB1 $LB2 clean again (keepalived inactive+disabled, no config)" bash -c "
    for n in $LB1 $LB2; do bash '$HERE/lab.sh' ssh \$n '! systemctl is-active keepalived && [ \"\$(systemctl is-enabled keepalived)\" = disabled ] && [ ! -e /etc/keepalived/keepalived.conf ]' || exit 1; done"
fi

# ---- clean stop / start of another host ------------------------------------------------------------
nl=${NAMES[${#NAMES[@]}-1]}
t=$(now_ms)
if lab stop "$nl" >/dev/null 2>&1 && lab status | awk -v n="$nl" '$1 == n {exit ($4 != "stopped")}'; then
  ok "clean stop of $nl in $(ms_since "$t") ms"
else ko "stop $nl"; fi
t=$(now_ms)
lab start "$nl" >/dev/null && ok "start $nl: ssh after $(ms_since "$t") ms" || ko "start $nl"

echo "memory per host:"; lab mem | sed 's/^/     /'
echo "failover: ${FAILOVER:-n/a}"
echo "smoke: $passes passed, $fails failed, $(ms_since "$T0") ms"
[ "$fails" = 0 ]
