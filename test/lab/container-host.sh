# shellcheck shell=bash
# Sourced by lab.sh: what a lab host needs to run containers (containerd, runc, kubelet) on THIS
# machine, applied only where the machine needs it (measured: ../shared/reference/nested-containers,
# now owned here). On a machine with cgroup v2 and loadable modules, hosts boot the normal way.
#
#   ch_needs_v1_init       true when this machine's cgroups are v1/hybrid (nspawn mounts the v1
#                          controllers read-only; systemd must find them writable when it starts)
#   ch_boot_args           the nspawn arguments that boot a host: `-b`, or the init wrapper
#   ch_prepare ROOTFS      per-host files written before every boot

CH_INIT=/usr/local/sbin/hk-init
ch_needs_v1_init() { [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]; }
ch_boot_args() { if ch_needs_v1_init; then echo "$CH_INIT"; else echo "-b"; fi; }

ch_prepare() {
  local d=$1
  mkdir -p "$d/usr/local/sbin" "$d/etc/systemd/journald.conf.d" "$d/etc/tmpfiles.d" "$d/etc/systemd/system"
  if ch_needs_v1_init; then
    # PID 1: make the v1 controller hierarchies writable, then become systemd. systemd decides once,
    # at start, which v1 controllers it manages (only writable ones); a remount after `-b` is too late.
    cat > "$d$CH_INIT" <<'EOF'
#!/bin/sh
# hakube lab: PID 1 of a host on a cgroup v1 machine (see test/lab/container-host.sh)
for c in /sys/fs/cgroup/*/; do
  mountpoint -q "$c" && mount -o remount,bind,rw "$c"
done
exec /lib/systemd/systemd SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE=1 "$@"
EOF
    chmod 0755 "$d$CH_INIT"
  fi
  # kubelet reads /dev/kmsg (OOM events); nspawn has none: point it at the console (as kind does),
  # and keep journald off it, or it spins on the console
  echo 'L /dev/kmsg - - - - /dev/console' > "$d/etc/tmpfiles.d/hk-kmsg.conf"
  printf '[Journal]\nReadKMsg=no\n' > "$d/etc/systemd/journald.conf.d/hk-no-kmsg.conf"
  # kubelet sets a few global sysctls when they differ and fails when it cannot; /proc/sys is
  # read-only here and these are not per-namespace: show each host a read-only file with the value
  # kubelet wants, over the ones that differ (this machine's kernel settings stay as they are)
  cat > "$d/usr/local/sbin/hk-kubelet-sysctls" <<'EOF'
#!/bin/sh
set -eu
mkdir -p /run/hk-sysctl
for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \
          kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
  k=${kv%%=*}; v=${kv#*=}; f=/proc/sys/$k
  [ "$(cat "$f")" = "$v" ] && continue
  mountpoint -q "$f" && continue
  t=/run/hk-sysctl/$(echo "$k" | tr / .)
  echo "$v" > "$t"
  mount --bind "$t" "$f" && mount -o remount,bind,ro "$f"
done
EOF
  chmod 0755 "$d/usr/local/sbin/hk-kubelet-sysctls"
  cat > "$d/etc/systemd/system/hk-kubelet-sysctls.service" <<'EOF'
[Unit]
Description=hakube lab: the global sysctls kubelet wants, as this host sees them
DefaultDependencies=no
Before=kubelet.service containerd.service sysinit.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/hk-kubelet-sysctls
[Install]
WantedBy=sysinit.target
EOF
  mkdir -p "$d/etc/systemd/system/sysinit.target.wants"
  ln -sf /etc/systemd/system/hk-kubelet-sysctls.service "$d/etc/systemd/system/sysinit.target.wants/hk-kubelet-sysctls.service"
}
