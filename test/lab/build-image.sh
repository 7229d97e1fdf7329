#!/usr/bin/env bash
# Build (once) the Debian bookworm base image for hakube lab hosts.
#
#   build-image.sh [--force]   build unless the current image exists (--force: rebuild)
#   build-image.sh --name      print the current image name (bookworm-<hash>) and exit
#
# The image lives in $HAKUBE_LAB_DIR/image/ (default /var/lib/hakube-lab/image/):
#   <name>/            the root filesystem (hosts are full copies of it)
#   <name>.tar.zst     the same as a tarball (used if the directory is missing)
#   <name>.versions    installed package versions (also copied to $HAKUBE_LAB_DIR/package-versions.txt)
#   <name>.done        written last: the image is complete
# <name> = bookworm-<first 12 hex of sha256(recipe version + sorted package list)>, so editing
# image-packages.txt (or bumping RECIPE below) makes a new image.
set -euo pipefail

LAB_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LABDIR=${HAKUBE_LAB_DIR:-/var/lib/hakube-lab}
IMGDIR=$LABDIR/image
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
RECIPE=2   # bump when the customization below changes in a way that needs a new image

log() { echo "build-image: $*" >&2; }
die() { echo "build-image: ERROR: $*" >&2; exit 1; }

mapfile -t PKGS < <(sed 's/#.*//' "$LAB_SRC/image-packages.txt" | tr -s ' \t' '\n' | sed '/^$/d' | sort -u)
[ "${#PKGS[@]}" -gt 0 ] || die "no packages in $LAB_SRC/image-packages.txt"
HASH=$({ echo "suite=$SUITE recipe=$RECIPE"; printf '%s\n' "${PKGS[@]}"; } | sha256sum | cut -c1-12)
NAME=$SUITE-$HASH
R=$IMGDIR/$NAME
TAR=$IMGDIR/$NAME.tar.zst

case "${1:-}" in
  --name) echo "$NAME"; exit 0 ;;
  --force) FORCE=1 ;;
  "") FORCE=0 ;;
  *) die "usage: build-image.sh [--force|--name]" ;;
esac
[ "$(id -u)" = 0 ] || die "must run as root"

# Tools the lab needs on this machine (also when the image is cached): only missing ones, said
# first, apt's output in $LABDIR/logs/apt.log, nothing already installed upgraded (test/ensure-packages.sh).
need=()
for t in "mmdebstrap:mmdebstrap:builds the base image" "systemd-nspawn:systemd-container:runs each lab host (systemd-nspawn)" \
         "nft:nftables:the lab's firewall/NAT table and partitions" "zstd:zstd:the base image tarball" \
         "ip:iproute2:the bridge and veths" "ssh-keygen:openssh-client:lab keys, ssh into hosts" \
         "nsenter:util-linux:lab exec, flock" "ping:iputils-ping:smoke.sh" "flock:util-linux:the lab lock"; do
  IFS=: read -r cmd pkg why <<< "$t"
  command -v "$cmd" >/dev/null || need+=("$pkg=$why ($cmd)")
done
if [ "${#need[@]}" -gt 0 ]; then
  "$LAB_SRC/../ensure-packages.sh" --for build-image --log "$LABDIR/logs/apt.log" "${need[@]}" || die "cannot install the lab's tools (see above)"
fi

if [ "$FORCE" = 0 ] && [ -f "$IMGDIR/$NAME.done" ]; then
  if [ -x "$R/sbin/init" ]; then log "image $NAME is up to date"; exit 0; fi
  if [ -f "$TAR" ]; then            # directory removed (e.g. to save space): unpack the tarball
    log "unpacking $TAR"
    rm -rf "$R.partial"; mkdir -p "$R.partial"
    tar -C "$R.partial" --numeric-owner --xattrs --acls -I zstd -xf "$TAR"
    mv "$R.partial" "$R"; exit 0
  fi
fi

mkdir -p "$IMGDIR"
rm -rf "$R" "$R.partial" "$TAR" "$IMGDIR/$NAME.done"
start=$SECONDS
log "mmdebstrap $SUITE with ${#PKGS[@]} packages -> $R (log: $IMGDIR/$NAME.build.log)"
# mmdebstrap installs a policy-rc.d while it runs: no service starts on this machine.
log "this takes 1-4 min (downloads ~${#PKGS[@]} packages and their dependencies from $MIRROR); progress every ${HAKUBE_LAB_PROGRESS_S:-10} s"
mmdebstrap --variant=minbase --include="$(IFS=,; echo "${PKGS[*]}")" \
      --dpkgopt=force-unsafe-io --aptopt='Acquire::Languages "none"' \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      "$SUITE" "$R.partial" "deb $MIRROR $SUITE main" > "$IMGDIR/$NAME.build.log" 2>&1 &
mm=$!
# Progress: mmdebstrap's current phase (its last "I:" line) and the size of the root filesystem so far.
while kill -0 "$mm" 2>/dev/null; do
  for _ in $(seq "${HAKUBE_LAB_PROGRESS_S:-10}"); do kill -0 "$mm" 2>/dev/null || break; sleep 1; done
  kill -0 "$mm" 2>/dev/null || break
  phase=$({ grep '^I: ' "$IMGDIR/$NAME.build.log" 2>/dev/null || true; } | tail -1 | cut -c4-80)
  size=$({ du -sm "$R.partial" 2>/dev/null || true; } | cut -f1)
  log "  $((SECONDS - start)) s: ${phase:-starting} (rootfs ${size:-0} MB)"
done
if ! wait "$mm"; then
  tail -20 "$IMGDIR/$NAME.build.log" >&2
  die "mmdebstrap failed (see $IMGDIR/$NAME.build.log)"
fi
t_debootstrap=$((SECONDS - start))
log "mmdebstrap took ${t_debootstrap}s"

# ---- customization ---------------------------------------------------------------------------
B=$R.partial
cat > "$B/etc/apt/sources.list" <<EOF
deb http://deb.debian.org/debian $SUITE main
deb http://deb.debian.org/debian $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
printf 'Acquire::Languages "none";\n' > "$B/etc/apt/apt.conf.d/99hakube-lab"
rm -f "$B/etc/apt/apt.conf.d/99mmdebstrap" "$B/etc/dpkg/dpkg.cfg.d/99mmdebstrap"
# Fewer files make the per-host full copies faster (~30%); later installs in hosts skip them too.
cat > "$B/etc/dpkg/dpkg.cfg.d/10hakube-lab-nodoc" <<'EOF'
path-exclude=/usr/share/man/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
EOF

# Each host generates its own machine-id on first boot.
: > "$B/etc/machine-id"; rm -f "$B/var/lib/dbus/machine-id"

# SSH: no host keys in the image (lab.sh installs each host's stable key); key auth only.
rm -f "$B"/etc/ssh/ssh_host_*
cat > "$B/etc/ssh/sshd_config.d/10-hakube-lab.conf" <<'EOF'
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
PrintMotd no
PrintLastLog no
EOF
# pam_motd would run update-motd scripts on every login: keep logins lean.
sed -i '/pam_motd\.so/s/^/# hakube-lab: /' "$B/etc/pam.d/sshd"
# Lean root shell (no slow profile).
printf '# hakube lab: lean login shell\nexport PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n' > "$B/root/.profile"
printf '# hakube lab: lean interactive shell\nPS1='"'"'\\u@\\h:\\w\\$ '"'"'\n' > "$B/root/.bashrc"
# Console login without password (nspawn console only; sshd refuses passwords).
chroot "$B" passwd -d root >/dev/null

# nspawn mounts cgroup v1 controllers read-only; container runtimes need them writable. Each
# host has its own cgroup in every hierarchy (lab.sh launcher), so this stays per-host.
cat > "$B/etc/systemd/system/hakube-cgroup-rw.service" <<'EOF'
[Unit]
Description=Make cgroup v1 controller mounts writable (hakube lab)
DefaultDependencies=no
Before=sysinit.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'for c in /sys/fs/cgroup/*/; do mountpoint -q "$c" && mount -o remount,bind,rw "$c"; done; true'
[Install]
WantedBy=sysinit.target
EOF
echo 'L /dev/kmsg - - - - /dev/console' > "$B/etc/tmpfiles.d/hakube-kmsg.conf"

# Networking: systemd-networkd on host0 (lab.sh writes the .network file per host).
ln -sf /dev/null "$B/etc/systemd/system/systemd-networkd-wait-online.service"
systemctl --root="$B" enable systemd-networkd.service systemd-networkd.socket hakube-cgroup-rw.service >/dev/null 2>&1

# Services baked in for speed but left to the program under test: disabled, never started.
SERVICES=(etcd haproxy nginx keepalived)
systemctl --root="$B" disable "${SERVICES[@]/%/.service}" >/dev/null 2>&1 || true
# apt timers would grab the dpkg lock in the middle of a deploy.
systemctl --root="$B" disable apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer fstrim.timer >/dev/null 2>&1 || true
for s in "${SERVICES[@]}"; do
  st=$(systemctl --root="$B" is-enabled "$s.service" 2>/dev/null || true)
  [ "$st" = disabled ] || die "$s.service is '$st' in the image, expected disabled"
done
for s in "${SERVICES[@]}"; do   # sysv links are ignored by systemd (native units), keep them tidy too
  [ -x "$B/etc/init.d/$s" ] && chroot "$B" update-rc.d "$s" disable >/dev/null 2>&1 || true
done
left=$(find "$B/etc/systemd/system" -path '*.wants/*' \( -name 'etcd*' -o -name 'haproxy*' -o -name 'nginx*' -o -name 'keepalived*' \))
[ -z "$left" ] || die "start links left in the image: $left"
# Debian's etcd-server would start a single-node member with data in /var/lib/etcd/default:
# the unit is disabled above; leave no data dir behind either.
rm -rf "${B:?}/var/lib/etcd/"*

rm -rf "$B"/var/cache/apt/archives/*.deb "$B"/var/lib/apt/lists/* "$B/etc/resolv.conf" "$B"/var/log/*.log

# Nothing the build ran may still be alive (policy-rc.d kept services from starting).
for p in etcd haproxy nginx keepalived; do
  for pid in $(pgrep -x "$p" || true); do
    [ "$(readlink -f "/proc/$pid/root")" = "$(readlink -f "$B")" ] && die "$p (pid $pid) was started by the build"
  done
done

dpkg-query --admindir="$B/var/lib/dpkg" -W -f '${Package} ${Version}\n' | sort > "$IMGDIR/$NAME.versions"

t0=$SECONDS
log "customized; packing the cached tarball $(basename "$TAR") (zstd)"
tar -C "$B" --numeric-owner --xattrs --acls -I 'zstd -T0 -3' -cf "$TAR.partial" .
mv "$TAR.partial" "$TAR"
mv "$B" "$R"
cp "$IMGDIR/$NAME.versions" "$LABDIR/package-versions.txt"
{ echo "name=$NAME"; echo "built=$(date -Is)"; echo "mmdebstrap_s=$t_debootstrap"; echo "total_s=$((SECONDS - start))"
  echo "rootfs=$(du -sh "$R" | cut -f1) tarball=$(du -h "$TAR" | cut -f1)"; } > "$IMGDIR/$NAME.done"
log "tarball in $((SECONDS - t0))s; total $((SECONDS - start))s; $(tail -1 "$IMGDIR/$NAME.done")"

# Older images are no longer used by anything (hosts are full copies): remove them.
for old in "$IMGDIR"/"$SUITE"-*.done; do
  o=$(basename "$old" .done); [ "$o" = "$NAME" ] && continue
  log "removing old image $o"; rm -rf "${IMGDIR:?}/$o" "$IMGDIR/$o".*
done
