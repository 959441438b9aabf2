#!/usr/bin/env bash
# Builds the envtest control plane (kube-apiserver and etcd) from Go modules.
#
# setup-envtest normally downloads prebuilt binaries; these machines can reach only the Go module
# proxy, so we build them. Each binary is built in a throwaway module of its own, so neither
# dependency graph ever touches this project's go.mod:
#   - kube-apiserver from k8s.io/kubernetes v1.X.N, where v0.X.N is this project's k8s.io/api, with
#     every staging module (read from k8s.io/kubernetes's own go.mod) replaced by its v0.X.N release;
#   - etcd from go.etcd.io/etcd/server/v3 at the version that Kubernetes release pins.
#
# The binaries are kept in a per-user cache too (ENVTEST_CACHE, default ~/.cache/datasette-token-operator),
# so a fresh clone on a warm machine copies them instead of rebuilding.
#
# Usage: hack/build-envtest.sh [BIN_DIR]   (prints the asset directory on its last line)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin_dir=${1:-$root/bin}
go=${GO:-go}

api_version=$(cd "$root" && "$go" list -m -f '{{.Version}}' k8s.io/api)   # v0.37.2
k8s_version=v1.${api_version#v0.}                                              # v1.37.2
os_arch=$("$go" env GOOS)-$("$go" env GOARCH)
assets=$bin_dir/k8s/${k8s_version#v}-$os_arch
mkdir -p "$assets"

log() { printf '[envtest] %s\n' "$*" >&2; }

cache=${ENVTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/datasette-token-operator}/k8s/${k8s_version#v}-$os_arch
for b in kube-apiserver etcd; do
  if [[ ! -x $assets/$b && -x $cache/$b ]]; then
    log "$b: copying the build cached in $cache"
    cp "$cache/$b" "$assets/$b.tmp" && mv "$assets/$b.tmp" "$assets/$b"
  fi
done
if [[ -x $assets/kube-apiserver && -x $assets/etcd ]]; then
  log "control plane $k8s_version ready in $assets"
  [[ -x $cache/kube-apiserver && -x $cache/etcd ]] || { mkdir -p "$cache" && cp "$assets/kube-apiserver" "$assets/etcd" "$cache/"; }
  echo "$assets"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# k8s.io/kubernetes's go.mod names its staging modules (replaced by ./staging/...) and pins etcd.
kube_mod=$work/kubernetes.mod
(cd "$work" && "$go" mod download -json "k8s.io/kubernetes@$k8s_version") >"$work/dl.json"
cp "$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' "$work/dl.json")" "$kube_mod"
staging=$(awk '/=> \.\/staging\/src\// {print $1}' "$kube_mod")
etcd_version=$(awk '$1 == "go.etcd.io/etcd/server/v3" {print $2}' "$kube_mod")
[[ -n $staging && -n $etcd_version ]] || { log "could not read $kube_mod"; exit 1; }

build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)

if [[ ! -x $assets/kube-apiserver ]]; then
  log "building kube-apiserver $k8s_version (a cold build takes 10-20 minutes on 2 cores)"
  mkdir -p "$work/apiserver" && cd "$work/apiserver"
  "$go" mod init envtest.local/kube-apiserver >/dev/null 2>&1
  {
    echo "require k8s.io/kubernetes $k8s_version"
    echo "replace ("
    for m in $staging; do echo "	$m => $m $api_version"; done
    echo ")"
  } >>go.mod
  "$go" mod edit -go="$(awk '$1 == "go" {print $2}' "$kube_mod")"
  GOFLAGS=-mod=mod "$go" get "k8s.io/kubernetes/cmd/kube-apiserver@$k8s_version" >&2
  pkg=k8s.io/component-base/version
  minor=$(cut -d. -f2 <<<"$api_version")
  ldflags="-s -w -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
  CGO_ENABLED=0 "$go" build -trimpath -ldflags "$ldflags" -o "$assets/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  mv "$assets/kube-apiserver.tmp" "$assets/kube-apiserver"
  log "kube-apiserver: $("$assets/kube-apiserver" --version)"
fi

if [[ ! -x $assets/etcd ]]; then
  log "building etcd $etcd_version (a few minutes)"
  mkdir -p "$work/etcd" && cd "$work/etcd"
  "$go" mod init envtest.local/etcd >/dev/null 2>&1
  cat >main.go <<'GO'
// Command etcd is etcd's server, built from go.etcd.io/etcd/server/v3 as etcd's own main does.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  GOFLAGS=-mod=mod "$go" get "go.etcd.io/etcd/server/v3@$etcd_version" >&2
  GOFLAGS=-mod=mod "$go" mod tidy >&2
  CGO_ENABLED=0 "$go" build -trimpath -ldflags "-s -w" -o "$assets/etcd.tmp" .
  mv "$assets/etcd.tmp" "$assets/etcd"
  log "etcd: $("$assets/etcd" --version | head -1)"
fi

mkdir -p "$cache" && cp "$assets/kube-apiserver" "$assets/etcd" "$cache/"
echo "$assets"
