#!/usr/bin/env bash
# The lab's air-gapped toolchain: every binary, archive, package and image the lab's site serves,
# built from the Go module proxy (and Debian's packages) at the versions test/lab/toolchain/manifest.json
# pins. Nothing here downloads a prebuilt binary.
#
#   build.sh            build what is missing, print progress per artifact and the total time
#   build.sh --path     print the cache directory of this manifest (built or not)
#   build.sh --check    exit 0 when the toolchain of this manifest is complete, 1 otherwise
#   build.sh --force    rebuild every artifact of this manifest
#
# Output: $HAKUBE_TOOLCHAIN_CACHE (default /var/cache/hakube-lab/toolchain)/<hash>/, where <hash>
# is the sha256 of the manifest and of the build scripts, so a changed pin builds into a new
# directory and an unchanged one is reused (nothing is rebuilt: "toolchain cached").
#   bin/      kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy
#             etcd etcdctl etcdutl containerd containerd-shim-runc-v2 ctr runc crictl coredns
#             registry http-server pulumi
#   cni/      the CNI reference plugins (bridge host-local loopback portmap)
#   flannel/  flanneld, install-conf (the flannel image's programs) and the flannel CNI plugin
#   mirror/   the file mirror's document root, laid out as the upstream URLs are
#             (github.com/<org>/<repo>/releases/download/…, pkgs.k8s.io/core:/stable:/v1.37/deb/)
#   images/   OCI image archives, and images.txt (name → archive)
# A failure names the artifact and the module; the log of each step is in <hash>/logs/.
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MANIFEST=$HERE/manifest.json
CACHE_ROOT=${HAKUBE_TOOLCHAIN_CACHE:-/var/cache/hakube-lab/toolchain}
HASH=$(cat "$MANIFEST" "$HERE"/build.sh "$HERE"/debs.sh "$HERE"/images.sh "$HERE"/oci-image.cjs $(find "$HERE/files" -type f | LC_ALL=C sort) | sha256sum | cut -c1-16)
OUT=$CACHE_ROOT/$HASH
WORK=$CACHE_ROOT/work

case "${1:-}" in
  --path) echo "$OUT"; exit 0 ;;
  --check) [ -f "$OUT/.complete" ]; exit $? ;;
  --force) rm -rf "$OUT" ;;
  "") ;;
  *) echo "usage: build.sh [--path|--check|--force]" >&2; exit 2 ;;
esac

# m KEY: a value from the manifest (dotted path)
m() { node -e 'const v=process.argv[2].split(".").reduce((o,k)=>o?.[k], require(process.argv[1])); if (v===undefined) { console.error("manifest: no "+process.argv[2]); process.exit(1) } console.log(Array.isArray(v)?v.join(" "):v)' "$MANIFEST" "$1"; }

if [ -f "$OUT/.complete" ]; then
  echo "toolchain cached: $OUT"
  exit 0
fi

command -v go >/dev/null || [ ! -x /usr/local/go/bin/go ] || PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null || { echo "toolchain: go is not installed (the lab builds its toolchain from the Go module proxy)" >&2; exit 1; }
mkdir -p "$OUT"/{bin,cni,mirror,images,logs,.done} "$WORK"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local
ARCH=$(m arch)
t0=$SECONDS
STEPS=(kubernetes etcd containerd runc crictl cni coredns flannel registry pause httpserver debs mirror images pulumi)
n=0
current=""
trap 'rc=$?; [ -z "$current" ] || echo "toolchain: FAILED at $current (log: $OUT/logs/$current.log; last lines below)" >&2; [ -z "$current" ] || tail -n 15 "$OUT/logs/$current.log" >&2; exit $rc' ERR

# step NAME DESCRIPTION: run build_NAME unless done; print progress and the step's time
step() {
  local name=$1 what=$2 s=$SECONDS
  n=$((n + 1))
  if [ -f "$OUT/.done/$name" ]; then
    printf '[%2d/%d] %-11s %s: done before\n' "$n" "${#STEPS[@]}" "$name" "$what"
    return 0
  fi
  printf '[%2d/%d] %-11s %s … ' "$n" "${#STEPS[@]}" "$name" "$what"
  current=$name
  "build_$name" > "$OUT/logs/$name.log" 2>&1
  current=""
  touch "$OUT/.done/$name"
  printf '%ss\n' "$((SECONDS - s))"
}

# gomod DIR MODULE@VERSION…: a wrapper module in $WORK/DIR requiring the given modules
gomod() {
  local dir=$WORK/$1; shift
  rm -rf "$dir"; mkdir -p "$dir"
  { echo "module hakube.local/toolchain/$(basename "$dir")"; echo; echo "go $(go env GOVERSION | sed 's/^go//')"; } > "$dir/go.mod"
  (cd "$dir" && for mv in "$@"; do go mod edit -require="$mv"; done)
}
# gobuild DIR OUTDIR LDFLAGS PKG…: build main packages of the wrapper module (static, trimmed, niced)
gobuild() {
  local dir=$WORK/$1 outdir=$2 ldflags=$3; shift 3
  printf 'package tools\n\nimport (\n' > "$dir/tools.go"
  for p in "$@"; do printf '\t_ "%s"\n' "$p" >> "$dir/tools.go"; done
  printf ')\n' >> "$dir/tools.go"
  sed -i '1i //go:build tools\n' "$dir/tools.go"
  (cd "$dir" && go mod tidy && CGO_ENABLED=${CGO:-0} nice -n 10 go build -trimpath ${TAGS:+-tags "$TAGS"} -ldflags "-s -w $ldflags" -o "$outdir/" "$@")
}
# prints WANT CMD…: CMD's output (stdout and stderr) contains WANT, else say what it printed
prints() {
  local want=$1 out; shift
  out=$("$@" 2>&1 || true)
  [[ "$out" == *"$want"* ]] || { echo "version check failed: '$*' printed: $out (wanted: $want)"; return 1; }
}
# modtime MODULE VERSION: the release time the proxy records (a reproducible build date)
modtime() { go mod download -json "$1@$2" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).Time ?? JSON.parse(s).Error))'; }

build_kubernetes() {
  local v mod kv sv ts ld="" p
  v=$(m kubernetes.version); sv=$(m kubernetes.stagingVersion); mod=$(m kubernetes.module)
  gomod kubernetes "$mod@v$v"
  kv=$(go mod download -json "$mod@v$v" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).GoMod))')
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging:
  # replace each with the published module of the same release
  for p in $(awk '$2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }' "$kv"); do
    (cd "$WORK/kubernetes" && go mod edit -replace="$p=$p@v$sv")
  done
  ts=$(modtime "$mod" "v$v")
  local major=${v%%.*} minor=${v#*.}; minor=${minor%%.*}
  # the version stamp upstream's hack/lib/version.sh sets; built from the module archive, not a git
  # checkout, so there is no commit and the tree state is "archive" (upstream's word for that case)
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=v$v -X $p.gitMajor=$major -X $p.gitMinor=$minor -X $p.gitCommit= -X $p.gitTreeState=archive -X $p.buildDate=$ts"
  done
  local pkgs=()
  for p in $(m kubernetes.programs); do pkgs+=("$mod/cmd/$p"); done
  TAGS=selinux,notest gobuild kubernetes "$OUT/bin" "$ld" "${pkgs[@]}"
  prints "v$v" "$OUT/bin/kubeadm" version -o short
}

build_etcd() {
  local v=$(m etcd.version)
  gomod etcd "go.etcd.io/etcd/server/v3@v$v" "go.etcd.io/etcd/etcdctl/v3@v$v" "go.etcd.io/etcd/etcdutl/v3@v$v" \
    "go.etcd.io/etcd/api/v3@v$v" "go.etcd.io/etcd/client/v3@v$v" "go.etcd.io/etcd/client/pkg/v3@v$v" "go.etcd.io/etcd/pkg/v3@v$v"
  # etcd's own main package (go.etcd.io/etcd/v3, the repository root) is not served at this release;
  # it is three lines that call etcdmain.Main, written here the same way
  mkdir -p "$WORK/etcd/cmd/etcd"
  cat > "$WORK/etcd/cmd/etcd/main.go" <<'EOF'
// Command etcd: the etcd server, as the etcd repository's root main package builds it.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  gobuild etcd "$OUT/bin" "" hakube.local/toolchain/etcd/cmd/etcd go.etcd.io/etcd/etcdctl/v3 go.etcd.io/etcd/etcdutl/v3
  prints "etcd Version: $v" "$OUT/bin/etcd" --version
}

build_containerd() {
  local v=$(m containerd.version) mod=github.com/containerd/containerd/v2
  gomod containerd "$mod@v$v"
  gobuild containerd "$OUT/bin" "-X $mod/version.Version=v$v -X $mod/version.Revision=archive -X $mod/version.Package=github.com/containerd/containerd/v2" \
    "$mod/cmd/containerd" "$mod/cmd/containerd-shim-runc-v2" "$mod/cmd/ctr"
  prints " v$v " "$OUT/bin/containerd" --version
}

build_runc() {
  local v=$(m runc.version)
  # runc needs cgo and libseccomp (Debian's libseccomp-dev, installed by test/all.sh / lab.sh)
  pkg-config --exists libseccomp || { echo "runc needs libseccomp-dev (apt-get install libseccomp-dev pkg-config)"; return 1; }
  gomod runc "github.com/opencontainers/runc@v$v"
  CGO=1 TAGS=seccomp,urfave_cli_no_docs gobuild runc "$OUT/bin" "-X main.version=$v -X main.gitCommit=archive -extldflags -static-pie" github.com/opencontainers/runc \
    || CGO=1 TAGS=seccomp,urfave_cli_no_docs gobuild runc "$OUT/bin" "-X main.version=$v -X main.gitCommit=archive" github.com/opencontainers/runc
  prints "runc version $v" "$OUT/bin/runc" --version
}

build_crictl() {
  local v=$(m criTools.version) mod=sigs.k8s.io/cri-tools
  gomod crictl "$mod@v$v"
  gobuild crictl "$OUT/bin" "-X $mod/pkg/version.Version=v$v" "$mod/cmd/crictl"
  prints "v$v" "$OUT/bin/crictl" --version
}

build_cni() {
  local v=$(m cniPlugins.version) p pkgs=()
  for p in $(m cniPlugins.plugins); do
    case $p in host-local) pkgs+=("github.com/containernetworking/plugins/plugins/ipam/$p") ;;
      portmap|bandwidth|firewall|tuning) pkgs+=("github.com/containernetworking/plugins/plugins/meta/$p") ;;
      *) pkgs+=("github.com/containernetworking/plugins/plugins/main/$p") ;; esac
  done
  gomod cni "github.com/containernetworking/plugins@v$v"
  gobuild cni "$OUT/cni" "-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=v$v" "${pkgs[@]}"
  prints "v$v" "$OUT/cni/bridge" version
}

build_coredns() {
  local v=$(m coredns.version)
  gomod coredns "github.com/coredns/coredns@v$v"
  gobuild coredns "$OUT/bin" "" github.com/coredns/coredns
  prints "CoreDNS-$v" "$OUT/bin/coredns" -version
}

build_flannel() {
  local v=$(m flannel.version) pm=$(m flannel.cniPluginModule) pv=$(m flannel.cniPluginVersion) mod=github.com/flannel-io/flannel
  mkdir -p "$OUT/flannel"
  gomod flannel "$mod@v$v"
  # flanneld links every backend; the tencentvpc one needs an SDK module the proxy does not serve
  (cd "$WORK/flannel" && go mod edit -replace="github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc=$HERE/files/tencentcloud-vpc-unavailable")
  # as upstream's Makefile builds dist/flanneld: cgo (the udp backend's C proxy), static
  CGO=1 TAGS=netgo,osusergo gobuild flannel "$OUT/flannel" "-X $mod/pkg/version.Version=v$v -extldflags -static" "$mod" "$mod/cmd/install_conf"
  mv "$OUT/flannel/flannel" "$OUT/flannel/flanneld"; mv "$OUT/flannel/install_conf" "$OUT/flannel/install-conf"
  prints "v$v" "$OUT/flannel/flanneld" --version
  # the CNI plugin: its own wrapper module (flannel requires a newer containernetworking/plugins)
  gomod flannel-cni "$pm@v$pv"
  gobuild flannel-cni "$OUT/flannel" "-X $pm/pkg/utils/buildversion.BuildVersion=v$pv" "$pm/plugins/meta/flannel"
  mv "$OUT/flannel/flannel" "$OUT/flannel/cni-plugin-flannel"
  prints "plugin v$pv" "$OUT/flannel/cni-plugin-flannel"
  # the manifest as released (the module tree holds the release's Documentation/kube-flannel.yml)
  local src d=$OUT/mirror/github.com/flannel-io/flannel/releases/download/v$v
  src=$(go mod download -json "$mod@v$v" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).Dir))')
  mkdir -p "$d"; install -m 0644 "$src/Documentation/kube-flannel.yml" "$d/kube-flannel.yml"
  grep -q "image: ghcr.io/flannel-io/flannel:v$v" "$d/kube-flannel.yml" || { echo "kube-flannel.yml does not name flannel v$v"; return 1; }
}

build_registry() {
  local v=$(m registry.version) mod=$(m registry.module)
  gomod registry "$mod@v$v"
  gobuild registry "$OUT/bin" "-X $mod/version.version=v$v" "$mod/cmd/registry"
  prints "v$v" "$OUT/bin/registry" --version
}

build_httpserver() {
  mkdir -p "$WORK/http-server"
  cp "$HERE/files/http-server.go" "$WORK/http-server/main.go"
  printf 'module hakube.local/toolchain/http-server\n\ngo 1.26\n' > "$WORK/http-server/go.mod"
  (cd "$WORK/http-server" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$OUT/bin/http-server" .)
}

build_pause() {
  # kubernetes' build/pause/linux/pause.c, compiled as upstream's Makefile does (static, -Os)
  local v=$(m pause.version) src
  src=$(go mod download -json "$(m kubernetes.module)@v$(m kubernetes.version)" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).Dir))')
  gcc -Os -Wall -Werror -static -DVERSION="v$v-archive" -o "$OUT/bin/pause" "$src/build/pause/linux/pause.c"
  strip "$OUT/bin/pause"
  prints "v$v" "$OUT/bin/pause" -v
}

build_pulumi() {
  local v=$(m pulumi.version)
  gomod pulumi "github.com/pulumi/pulumi/pkg/v3@v$v" "github.com/pulumi/pulumi/sdk/v3@v$v"
  # pkg/v3's go.mod replaces atotto/clipboard with a fork; a wrapper module must say it again
  (cd "$WORK/pulumi" && go mod edit -replace=github.com/atotto/clipboard=github.com/tgummerer/clipboard@v0.0.0-20241001131231-d02d263e614e)
  TAGS=osusergo,grpcnotrace gobuild pulumi "$OUT/bin" "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$v" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
  prints "v$v" env PULUMI_SKIP_UPDATE_CHECK=1 "$OUT/bin/pulumi" version
}

build_debs() { OUT=$OUT MANIFEST=$MANIFEST bash "$HERE/debs.sh"; }
build_images() { OUT=$OUT MANIFEST=$MANIFEST bash "$HERE/images.sh"; }

# the file mirror: release archives in their upstream layout, each with its checksum file
build_mirror() {
  local d v tmp
  tmp=$(mktemp -d)
  # reproducible archives: sorted names, fixed times and owners
  rtar() { tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$1" -cf - "${@:2}" | gzip -n -9; }
  v=$(m etcd.version); d=$OUT/mirror/github.com/etcd-io/etcd/releases/download/v$v
  mkdir -p "$d" "$tmp/etcd-v$v-linux-$ARCH"
  cp "$OUT"/bin/{etcd,etcdctl,etcdutl} "$tmp/etcd-v$v-linux-$ARCH/"
  rtar "$tmp" "etcd-v$v-linux-$ARCH" > "$d/etcd-v$v-linux-$ARCH.tar.gz"
  (cd "$d" && sha256sum "etcd-v$v-linux-$ARCH.tar.gz" > SHA256SUMS)

  v=$(m containerd.version); d=$OUT/mirror/github.com/containerd/containerd/releases/download/v$v
  mkdir -p "$d" "$tmp/c/bin"
  cp "$OUT"/bin/{containerd,containerd-shim-runc-v2,ctr} "$tmp/c/bin/"
  rtar "$tmp/c" bin > "$d/containerd-$v-linux-$ARCH.tar.gz"
  (cd "$d" && sha256sum "containerd-$v-linux-$ARCH.tar.gz" > "containerd-$v-linux-$ARCH.tar.gz.sha256sum")

  v=$(m runc.version); d=$OUT/mirror/github.com/opencontainers/runc/releases/download/v$v
  mkdir -p "$d"; cp "$OUT/bin/runc" "$d/runc.$ARCH"
  (cd "$d" && sha256sum "runc.$ARCH" > runc.sha256sum)

  v=$(m cniPlugins.version); d=$OUT/mirror/github.com/containernetworking/plugins/releases/download/v$v
  mkdir -p "$d"
  rtar "$OUT/cni" . > "$d/cni-plugins-linux-$ARCH-v$v.tgz"
  (cd "$d" && sha256sum "cni-plugins-linux-$ARCH-v$v.tgz" > "cni-plugins-linux-$ARCH-v$v.tgz.sha256")

  v=$(m criTools.version); d=$OUT/mirror/github.com/kubernetes-sigs/cri-tools/releases/download/v$v
  mkdir -p "$d" "$tmp/crictl"; cp "$OUT/bin/crictl" "$tmp/crictl/"
  rtar "$tmp/crictl" crictl > "$d/crictl-v$v-linux-$ARCH.tar.gz"
  (cd "$d" && sha256sum "crictl-v$v-linux-$ARCH.tar.gz" > "crictl-v$v-linux-$ARCH.tar.gz.sha256")

  chmod -R u+w,go+r "$OUT/mirror"
  rm -rf "$tmp"
}

echo "toolchain: building into $OUT (manifest $(basename "$MANIFEST"), Go $(go env GOVERSION), $(nproc) cores)"
for s in "${STEPS[@]}"; do
  case $s in
    kubernetes) step kubernetes "k8s.io/kubernetes v$(m kubernetes.version): $(m kubernetes.programs | wc -w) programs" ;;
    etcd) step etcd "go.etcd.io/etcd v$(m etcd.version): etcd, etcdctl, etcdutl" ;;
    containerd) step containerd "github.com/containerd/containerd/v2 v$(m containerd.version)" ;;
    runc) step runc "github.com/opencontainers/runc v$(m runc.version) (cgo, seccomp)" ;;
    crictl) step crictl "sigs.k8s.io/cri-tools v$(m criTools.version)" ;;
    cni) step cni "github.com/containernetworking/plugins v$(m cniPlugins.version)" ;;
    coredns) step coredns "github.com/coredns/coredns v$(m coredns.version)" ;;
    flannel) step flannel "github.com/flannel-io/flannel v$(m flannel.version), its CNI plugin from $(m flannel.cniPluginModule) v$(m flannel.cniPluginVersion)" ;;
    registry) step registry "$(m registry.module) v$(m registry.version)" ;;
    httpserver) step httpserver "the lab's test image program (standard library)" ;;
    pause) step pause "pause $(m pause.version) (gcc, static)" ;;
    pulumi) step pulumi "github.com/pulumi/pulumi/pkg/v3 v$(m pulumi.version): the pulumi CLI" ;;
    debs) step debs "kubeadm/kubelet/kubectl/cri-tools/kubernetes-cni .debs, signed apt repository" ;;
    mirror) step mirror "release archives in their upstream layout, sha256 files" ;;
    images) step images "OCI images (kubeadm's list, test image)" ;;
  esac
done
touch "$OUT/.complete"
echo "toolchain: complete in $((SECONDS - t0))s: $OUT ($(du -sh "$OUT" | cut -f1))"
