#!/bin/bash
# VRRP failover with the rendered configs (test/loadbalancer/failover.test.ts). Run as root:
#   unshare --mount --net --pid --fork --mount-proc failover.sh DIR
# DIR/lb1 and DIR/lb2 hold haproxy.cfg, keepalived.conf and check.sh rendered with paths under
# /srv/lbN (DIR is bound on /srv: a root-owned path, as enable_script_security wants). Two
# network namespaces lb1 (10.123.0.11) and lb2 (10.123.0.12) are joined by a veth pair named
# host0 at both ends. The API servers never exist: every backend is DOWN the whole time.
# Prints "RESULT key value" lines; every daemon dies with the PID namespace.
set -u
D=$1
mount --bind "$D" /srv || exit 90
mkdir -p "$D/run" && mount --bind "$D/run" /run || exit 91
now() { date +%s%3N; }
unshare -n sleep 600 &
P1=$!
unshare -n sleep 600 &
P2=$!
sleep 0.2
ip link add name host0 netns "$P1" type veth peer name host0 netns "$P2" || exit 92
at() { local p=$1; shift; nsenter -t "$p" -n "$@"; }
at "$P1" sh -c 'ip link set lo up && ip link set host0 up && ip addr add 10.123.0.11/24 dev host0' || exit 93
at "$P2" sh -c 'ip link set lo up && ip link set host0 up && ip addr add 10.123.0.12/24 dev host0' || exit 93
start_haproxy() { at "$1" haproxy -D -f "/srv/lb$2/haproxy.cfg" -p "/srv/lb$2/haproxy.pid"; }
start_keepalived() { at "$1" keepalived -f "/srv/lb$2/keepalived.conf" -p "/srv/lb$2/k.pid" -r "/srv/lb$2/v.pid" -c "/srv/lb$2/c.pid"; }
has_vip() { at "$1" ip -o -4 addr show dev host0 | grep -q ' 10.123.0.100/'; }
# wait_vip PID LIMIT_MS: print the ms until PID's host0 carries the VIP (or "timeout")
wait_vip() {
  local t0
  t0=$(now)
  while ! has_vip "$1"; do
    [ $(($(now) - t0)) -lt "$2" ] || { echo timeout; return 1; }
    sleep 0.01
  done
  echo $(($(now) - t0))
}
# hold MS: sample every 50 ms; print how many samples had the VIP anywhere but on $holder alone
hold() {
  local end bad=0 a b
  end=$(($(now) + $1))
  while [ "$(now)" -lt "$end" ]; do
    has_vip "$P1" && a=1 || a=0
    has_vip "$P2" && b=1 || b=0
    if [ "$holder" = 1 ] && [ "$a$b" != 10 ]; then bad=$((bad + 1)); fi
    if [ "$holder" = 2 ] && [ "$a$b" != 01 ]; then bad=$((bad + 1)); fi
    sleep 0.05
  done
  echo "$bad"
}

start_haproxy "$P1" 1 || exit 94
start_haproxy "$P2" 2 || exit 94
start_keepalived "$P1" 1 || exit 95
echo "RESULT lb1_master_after_start_ms $(wait_vip "$P1" 5000)"
start_keepalived "$P2" 2 || exit 95
holder=1
echo "RESULT hold_all_apiservers_down_bad_samples $(hold 1200)"

# crash of the master: its VRRP process freezes (no adverts, no goodbye)
kill -STOP "$(cat /srv/lb1/v.pid)"
echo "RESULT master_crash_failover_ms $(wait_vip "$P2" 5000)"
# the crashed master restarts: keepalived killed hard (its VIP stays behind), then started again
kill -KILL "$(cat /srv/lb1/v.pid)" "$(cat /srv/lb1/k.pid)" 2>/dev/null
sleep 0.1
has_vip "$P1" && echo "RESULT stale_vip_after_sigkill yes" || echo "RESULT stale_vip_after_sigkill no"
rm -f /srv/lb1/k.pid /srv/lb1/v.pid /srv/lb1/c.pid
start_keepalived "$P1" 1 || exit 95
sleep 0.5
has_vip "$P1" && echo "RESULT stale_vip_after_restart yes" || echo "RESULT stale_vip_after_restart no"
at "$P1" ip addr del 10.123.0.100/24 dev host0 2>/dev/null
holder=2
echo "RESULT nopreempt_hold_bad_samples $(hold 1200)"

# the engine on the master dies: its check fails, lb2's priority drops below lb1's, lb1 preempts
kill -KILL "$(cat /srv/lb2/haproxy.pid)"
echo "RESULT engine_death_failover_ms $(wait_vip "$P1" 8000)"
sleep 0.1
has_vip "$P2" && echo "RESULT old_master_released_vip no" || echo "RESULT old_master_released_vip yes"
# every check fails at once (both engines dead: what a machine too busy to run the checks in time
# looks like to keepalived): nobody enters FAULT, the holder keeps the highest priority and the VIP
sleep 1
kill -KILL "$(cat /srv/lb1/haproxy.pid)"
holder=1
echo "RESULT all_checks_failing_bad_samples $(hold 4000)"
exit 0
