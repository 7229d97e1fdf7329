#!/bin/bash
# Build etcd and etcdctl of one release from the Go module proxy (no GitHub needed) for
# `npm run bench:etcd`: tiny wrapper mains calling etcdmain.Main / ctlv3.MustStart, built niced.
#   bash test/etcd/bench-build-etcd.sh [VERSION] [OUT_DIR]   (default 3.6.16, /var/cache/hakube-lab/etcd-bench)
# then: npm run bench:etcd   (it picks up OUT_DIR/etcd next to Debian's /usr/bin/etcd)
set -euo pipefail
version=${1:-3.6.16}
out=${2:-/var/cache/hakube-lab/etcd-bench}
src="$out/src"
export GOFLAGS=-buildvcs=false
mkdir -p "$src/server" "$src/etcdctl"
cat > "$src/server/main.go" <<'GO'
// etcd server from the Go module proxy (hakube bench:etcd).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
cat > "$src/etcdctl/main.go" <<'GO'
// etcdctl from the Go module proxy (hakube bench:etcd).
package main

import "go.etcd.io/etcd/etcdctl/v3/ctlv3"

func main() { ctlv3.MustStart() }
GO
build() { # DIR MODULE BINARY
  cd "$src/$1"
  [ -f go.mod ] || printf 'module hakube.local/etcdbench/%s\n\ngo 1.24\n' "$1" > go.mod
  nice -n 19 go get "$2@v$version"
  nice -n 19 go mod tidy
  nice -n 19 go build -trimpath -o "$out/$3" .
}
build server go.etcd.io/etcd/server/v3 etcd
build etcdctl go.etcd.io/etcd/etcdctl/v3 etcdctl
"$out/etcd" --version | awk "NR == 1"
"$out/etcdctl" version | awk "NR == 1"
