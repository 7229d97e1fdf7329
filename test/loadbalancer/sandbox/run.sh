#!/bin/bash
# Step sandbox (test/loadbalancer/steps.test.ts). Run as root inside
#   unshare --mount --net --pid --fork --mount-proc run.sh DIR ITEM...
# It overlays /etc, /var/lib, /var/log and /usr/local/sbin (writes land under DIR/ov, the
# machine's own files stay untouched), binds DIR/run on /run, puts the fake systemctl first in
# PATH, gives the namespace the VRRP interface host0 (10.123.0.11/24), then runs each ITEM:
#   NAME       bash DIR/steps/NAME.sh  → DIR/out/<k>-NAME.{out,err,rc}
#   @LABEL     snapshot                → DIR/out/<k>-LABEL.snap (addresses, daemons, config hashes)
#   !fresh     packages read as not installed (fake dpkg-query) until the fake apt-get installs them
# Every daemon dies with the PID namespace when this script ends.
set -u
D=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
for m in etc var/lib var/log usr/sbin usr/local/sbin; do
  mkdir -p "$D/ov/$m/upper" "$D/ov/$m/work"
  mount -t overlay overlay -o "lowerdir=/$m,upperdir=$D/ov/$m/upper,workdir=$D/ov/$m/work" "/$m" || exit 90
done
mkdir -p "$D/run" && mount --bind "$D/run" /run || exit 91
for f in systemctl dpkg-query apt-get; do install -m 0755 "$here/$f" "/usr/local/sbin/$f" || exit 92; done
ip link set lo up || exit 93
ip link add host0 type veth peer name hkpeer0 && ip link set host0 up && ip link set hkpeer0 up \
  && ip addr add 10.123.0.11/24 dev host0 || exit 94
mkdir -p "$D/out"
k=0
for item in "$@"; do
  k=$((k + 1))
  if [ "$item" = "!fresh" ]; then
    touch /run/fake-dpkg-missing
    rm -f /usr/sbin/policy-rc.d # (in the overlay) a fresh host has none
    continue
  fi
  if [ "${item#@}" != "$item" ]; then
    {
      echo "addresses: $(ip -o -4 addr show dev host0 | awk '{print $4}' | tr '\n' ' ')"
      for s in haproxy nginx keepalived; do
        if [ -s "/run/$s.pid" ] && kill -0 "$(head -n1 "/run/$s.pid")" 2>/dev/null; then echo "running: $s"; fi
      done
      for f in /etc/haproxy/haproxy.cfg /etc/nginx/nginx.conf /etc/keepalived/keepalived.conf; do
        [ -f "$f" ] && echo "hash: $f $(sha256sum < "$f" | cut -c1-16)"
      done
      [ -e /usr/sbin/policy-rc.d ] && echo "policy-rc.d: present"
    } > "$D/out/$k-${item#@}.snap" 2>&1
    continue
  fi
  bash "$D/steps/$item.sh" > "$D/out/$k-$item.out" 2> "$D/out/$k-$item.err" < /dev/null
  echo $? > "$D/out/$k-$item.rc"
done
exit 0
