#!/usr/bin/env bash
# Debian packages of the lab's Kubernetes binaries, in a signed apt repository laid out like
# pkgs.k8s.io (`deb [signed-by=…] <mirror>/pkgs.k8s.io/core:/stable:/v1.37/deb/ /`): the same package
# names, versions (<version>-<debRevision>), file paths and dependencies the program's
# `packages: pkgs.k8s.io` path installs and holds. Called by build.sh with OUT and MANIFEST set.
#
# The repository is signed with the lab's own key ($CACHE_ROOT/apt-signing, made once and kept):
# Release.key is its public key, which the program fetches from `aptRepository` like upstream's.
# Packages are reproducible (fixed times and owners); signatures carry their own time.
set -Eeuo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${OUT:?}" "${MANIFEST:?}"
CACHE_ROOT=$(dirname "$OUT")
m() { node -e 'const v=process.argv[2].split(".").reduce((o,k)=>o?.[k], require(process.argv[1])); console.log(Array.isArray(v)?v.join(" "):v)' "$MANIFEST" "$1"; }

ARCH=$(m arch)
KV=$(m kubernetes.version); REV=$(m kubernetes.debRevision)
MINOR=${KV%.*}
CRI=$(m criTools.version); CNI=$(m cniPlugins.version)
REPO=$OUT/mirror/pkgs.k8s.io/core:/stable:/v$MINOR/deb
export SOURCE_DATE_EPOCH=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$REPO/$ARCH"

# deb NAME VERSION DEPENDS DESCRIPTION SRC:DEST[:MODE]…
deb() {
  local name=$1 version=$2 depends=$3 desc=$4; shift 4
  local root=$tmp/$name f src dest mode
  mkdir -p "$root/DEBIAN"
  for f in "$@"; do
    IFS=: read -r src dest mode <<<"$f"
    install -D -m "${mode:-0755}" "$src" "$root$dest"
  done
  {
    echo "Package: $name"
    echo "Version: $version"
    echo "Architecture: $ARCH"
    echo "Maintainer: hakube lab <lab@hakube.invalid>"
    echo "Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)"
    [ -z "$depends" ] || echo "Depends: $depends"
    echo "Section: admin"
    echo "Priority: optional"
    echo "Homepage: https://kubernetes.io"
    echo "Description: $desc"
    echo " Built by the hakube lab from the official Go module (test/lab/toolchain)."
  } > "$root/DEBIAN/control"
  find "$root" -exec touch -h -d @0 {} +
  dpkg-deb --root-owner-group -Zgzip -z9 --build "$root" "$REPO/$ARCH/${name}_${version}_${ARCH}.deb" >/dev/null
}

deb kubectl "$KV-$REV" "" "Command-line utility for interacting with a Kubernetes cluster" \
  "$OUT/bin/kubectl:/usr/bin/kubectl"
deb cri-tools "$CRI-$REV" "" "Command-line utility for interacting with a container runtime" \
  "$OUT/bin/crictl:/usr/bin/crictl"
cni_files=()
for f in "$OUT"/cni/*; do cni_files+=("$f:/opt/cni/bin/$(basename "$f")"); done
deb kubernetes-cni "$CNI-$REV" "" "Binaries required to provision kubernetes container networking" "${cni_files[@]}"
deb kubelet "$KV-$REV" "iptables (>= 1.4.21), iproute2, mount, util-linux, ethtool, kubernetes-cni (>= 1.2.0)" \
  "Node agent for Kubernetes clusters" \
  "$OUT/bin/kubelet:/usr/bin/kubelet" "$HERE/files/kubelet.service:/usr/lib/systemd/system/kubelet.service:0644"
deb kubeadm "$KV-$REV" "cri-tools (>= 1.30.0)" "Command-line utility for administering a Kubernetes cluster" \
  "$OUT/bin/kubeadm:/usr/bin/kubeadm" "$HERE/files/10-kubeadm.conf:/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf:0644"

# the flat repository: Packages (+ .gz), Release with its checksums, signed
(cd "$REPO" && dpkg-scanpackages --multiversion "$ARCH" /dev/null 2>/dev/null > Packages && gzip -n -9 -k -f Packages)
{
  echo "Origin: hakube lab (pkgs.k8s.io layout)"
  echo "Label: kubernetes v$MINOR"
  echo "Architectures: $ARCH"
  echo "Date: $(date -u -R -d @0)"
  echo "SHA256:"
  for f in Packages Packages.gz; do printf ' %s %s %s\n' "$(sha256sum "$REPO/$f" | cut -d' ' -f1)" "$(stat -c %s "$REPO/$f")" "$f"; done
} > "$REPO/Release"

KEYDIR=$CACHE_ROOT/apt-signing
if [ ! -s "$KEYDIR/secret.asc" ]; then
  mkdir -p "$KEYDIR"; chmod 0700 "$KEYDIR"
  GNUPGHOME=$tmp/gen; mkdir -m 0700 "$GNUPGHOME"; export GNUPGHOME
  gpg --batch --quiet --passphrase '' --quick-gen-key "hakube lab apt repository <lab@hakube.invalid>" ed25519 sign never
  gpg --batch --armor --export-secret-keys > "$KEYDIR/secret.asc.tmp" && chmod 0600 "$KEYDIR/secret.asc.tmp" && mv "$KEYDIR/secret.asc.tmp" "$KEYDIR/secret.asc"
  unset GNUPGHOME
fi
export GNUPGHOME=$tmp/sign; mkdir -m 0700 "$GNUPGHOME"
gpg --batch --quiet --import "$KEYDIR/secret.asc"
gpg --batch --armor --export > "$REPO/Release.key"
rm -f "$REPO/Release.gpg" "$REPO/InRelease"
gpg --batch --yes --armor --detach-sign -o "$REPO/Release.gpg" "$REPO/Release"
gpg --batch --yes --clearsign -o "$REPO/InRelease" "$REPO/Release"
gpgconf --kill all 2>/dev/null || true
ls -l "$REPO" "$REPO/$ARCH"
