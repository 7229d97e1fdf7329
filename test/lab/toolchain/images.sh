#!/usr/bin/env bash
# The lab's container images as OCI image layouts in $OUT/images/<name>/, and images.txt mapping
# each to the reference it is pushed as: exactly the names and tags `kubeadm config images list`
# prints for the lab's image repository and the test image. Called by build.sh with OUT and MANIFEST set.
#
# Layers are reproducible tars (sorted, mtime 0, root-owned), so the same binaries give the same
# digests. Static Go programs sit alone in their layer; kube-proxy needs iptables,
# nftables and iproute2, which come from a minimal Debian layer (mmdebstrap, SOURCE_DATE_EPOCH=0;
# its digest follows the Debian packages of the day it was built).
set -Eeuo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${OUT:?}" "${MANIFEST:?}"
m() { node -e 'const v=process.argv[2].split(".").reduce((o,k)=>o?.[k], require(process.argv[1])); console.log(Array.isArray(v)?v.join(" "):v)' "$MANIFEST" "$1"; }
OCI="node $HERE/oci-image.cjs"
export SOURCE_DATE_EPOCH=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
L=$OUT/images/layers
mkdir -p "$L"
KV=$(m kubernetes.version); REPO=$(m lab.imageRepository); REG=$(m lab.registry)

# rtar DIR > FILE: a reproducible tar of DIR's contents
rtar() { tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$1" -cf - .; }
# binlayer NAME DEST:SRC…: a layer holding the given files (mode 0755)
binlayer() {
  local name=$1 d=$tmp/$1 f; shift
  mkdir -p "$d"
  for f in "$@"; do install -D -m 0755 "${f#*:}" "$d/${f%%:*}"; done
  rtar "$d" > "$L/$name.tar"
}

# the minimal Debian layer for the images that manage packet filters
if [ ! -s "$L/debian-netfilter.tar" ]; then
  command -v mmdebstrap >/dev/null || { echo "images: mmdebstrap is needed for the Debian layer (apt-get install mmdebstrap)"; exit 1; }
  mmdebstrap --quiet --variant=essential --include=iptables,nftables,iproute2,conntrack,ca-certificates,kmod \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -rf "$1"/var/cache/* "$1"/var/lib/apt/lists/* "$1"/var/log/*' \
    bookworm "$tmp/debian.tar" http://deb.debian.org/debian
  mv "$tmp/debian.tar" "$L/debian-netfilter.tar"
fi

: > "$OUT/images/images.txt"
# image NAME REF [oci-image build options…]
image() {
  local name=$1 ref=$2; shift 2
  $OCI build "$OUT/images/$name" "$@" >/dev/null
  echo "$name $ref $($OCI digest "$OUT/images/$name")" >> "$OUT/images/images.txt"
}

for p in kube-apiserver kube-controller-manager kube-scheduler; do
  binlayer "$p" "usr/local/bin/$p:$OUT/bin/$p"
  image "$p" "$REPO/$p:v$KV" --layer "$L/$p.tar" --entrypoint "[\"/usr/local/bin/$p\"]"
done
binlayer kube-proxy "usr/local/bin/kube-proxy:$OUT/bin/kube-proxy"
image kube-proxy "$REPO/kube-proxy:v$KV" --layer "$L/debian-netfilter.tar" --layer "$L/kube-proxy.tar" --entrypoint '["/usr/local/bin/kube-proxy"]'
binlayer coredns "coredns:$OUT/bin/coredns"
image coredns "$REPO/coredns:v$(m coredns.version)" --layer "$L/coredns.tar" --entrypoint '["/coredns"]'
binlayer pause "pause:$OUT/bin/pause"
image pause "$REPO/pause:$(m pause.version)" --layer "$L/pause.tar" --entrypoint '["/pause"]' --user 65535:65535
binlayer etcd "usr/local/bin/etcd:$OUT/bin/etcd" "usr/local/bin/etcdctl:$OUT/bin/etcdctl" "usr/local/bin/etcdutl:$OUT/bin/etcdutl"
image etcd "$REPO/etcd:$(m etcd.version)-0" --layer "$L/etcd.tar" --entrypoint '["/usr/local/bin/etcd"]'
# flannel: the programs at the paths kube-flannel.yml runs (/opt/bin/flanneld, /opt/bin/install-conf),
# over the Debian netfilter layer (flanneld's --ip-masq runs iptables); not upstream's Alpine image,
# so named under hakube-lab/ and mapped by the stack's cni.images
FV=$(m flannel.version)
binlayer flannel "opt/bin/flanneld:$OUT/flannel/flanneld" "opt/bin/install-conf:$OUT/flannel/install-conf"
image flannel "$REG/hakube-lab/flannel:v$FV" --layer "$L/debian-netfilter.tar" --layer "$L/flannel.tar" --entrypoint '["/opt/bin/flanneld"]'
# the CNI plugin image: /flannel, copied to the host by the manifest's init container (`cp`, from the Debian layer)
binlayer flannel-cni-plugin "flannel:$OUT/flannel/cni-plugin-flannel"
image flannel-cni-plugin "$REG/hakube-lab/flannel-cni-plugin:v$(m flannel.cniPluginVersion)" --layer "$L/debian-netfilter.tar" --layer "$L/flannel-cni-plugin.tar"
binlayer http-server "http-server:$OUT/bin/http-server"
image http-server "$REG/hakube-lab/http-server:1.0" --layer "$L/http-server.tar" --entrypoint '["/http-server"]' --user 65534:65534

# the kubeadm list must be covered exactly (pause, coredns, control plane, kube-proxy; etcd for
# `etcd.deployment: kubeadm`)
want=$("$OUT/bin/kubeadm" config images list --kubernetes-version "v$KV" --image-repository "$REPO" | sed "s/:3\.[0-9.]*-0\$/:$(m etcd.version)-0/" | sort)
have=$(awk '{ print $2 }' "$OUT/images/images.txt" | grep "^$REPO/" | sort)
if [ "$want" != "$have" ]; then
  echo "images: kubeadm config images list and the built images differ:"; diff <(echo "$want") <(echo "$have") || true; exit 1
fi
cat "$OUT/images/images.txt"
du -sh "$OUT/images"
