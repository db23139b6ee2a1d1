#!/usr/bin/env bash
# Builds the local control plane's binaries (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok, opa, helm) from the pinned wrapper modules in ./go into a versioned
# cache outside the repository. helm is not part of the control plane: it is built here, the same
# way, so the tests can lint and render the Helm chart Pepr generates (tests/e2e/helm-chart.test.ts). A complete cache entry means no rebuild; every entry is built in
# a temporary folder and renamed into place, so an interrupted build never leaves half a cache.
#
#   tools/controlplane/build.sh            build what is missing, print the cache root
#   tools/controlplane/build.sh --check    exit 0 when every entry is complete, 1 otherwise
#   tools/controlplane/build.sh --print    print KEY=PATH lines for every binary
#
# Cache root: $ATB_CONTROLPLANE_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/atb-operator/controlplane.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache_root=${ATB_CONTROLPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/atb-operator/controlplane}
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

die() { printf 'controlplane build: %s\n' "$*" >&2; exit 1; }

# entry <component>: the cache folder of one component, keyed by its pinned version and the
# wrapper module's content so an edited go.mod/go.sum never reuses a stale binary.
entry() {
  local comp=$1 version sum
  version=$(version_of "$comp")
  sum=$(cat "$here/go/$comp/go.mod" "$here/go/$comp/go.sum" | sha256sum | cut -c1-10)
  printf '%s/%s-%s-%s' "$cache_root" "$comp" "$version" "$sum"
}
version_of() {
  case $1 in
    k8s) echo "$K8S_VERSION" ;; etcd) echo "$ETCD_VERSION" ;;
    kwok) echo "$KWOK_VERSION" ;; opa) echo "$OPA_VERSION" ;; helm) echo "$HELM_VERSION" ;;
    *) die "unknown component $1" ;;
  esac
}
binaries_of() {
  case $1 in
    k8s) echo "kube-apiserver kube-controller-manager kube-scheduler kubectl" ;;
    etcd) echo "etcd" ;; kwok) echo "kwok kwok-stages.yaml" ;; opa) echo "opa" ;;
    helm) echo "helm" ;;
  esac
}
complete() {
  local dir=$1 comp=$2 b
  [ -f "$dir/.complete" ] || return 1
  for b in $(binaries_of "$comp"); do [ -s "$dir/$b" ] || return 1; done
}

components="etcd kwok opa helm k8s"

if [ "${1:-}" = "--print" ]; then
  for c in $components; do
    for b in $(binaries_of "$c"); do printf '%s=%s/%s\n' "$b" "$(entry "$c")" "$b"; done
  done
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  for c in $components; do complete "$(entry "$c")" "$c" || exit 1; done
  exit 0
fi

command -v go >/dev/null 2>&1 || die "Go is not installed or not on PATH. The control plane is built from source with Go >= 1.26 (https://go.dev/doc/install, or apt-get install golang-go if it is new enough)."
gov=$(go env GOVERSION | sed 's/^go//')
case $gov in 1.2[6-9]*|1.[3-9]*) ;; *) die "Go $gov is too old: the wrapper modules need Go >= 1.26 (GOTOOLCHAIN=local, no download)." ;; esac

mkdir -p "$cache_root"

# Progress for long builds: go build -v prints one line per compiled package; we print a count
# every 30 s so a cold build (tens of minutes) is visibly alive.
progress() {
  local log=$1 name=$2 start=$SECONDS
  while sleep 30; do
    printf '  ... %s: still building, %d packages compiled, %ds elapsed\n' \
      "$name" "$(grep -vc '^#' "$log" 2>/dev/null || echo 0)" $((SECONDS - start))
  done
}

build_one() {
  local comp=$1 final tmp log pid status=0
  final=$(entry "$comp")
  if complete "$final" "$comp"; then
    printf 'controlplane build: %s %s cached at %s\n' "$comp" "$(version_of "$comp")" "$final"
    return 0
  fi
  tmp=$(mktemp -d "$cache_root/.tmp-$comp-XXXXXX")
  chmod 755 "$tmp"
  log="$tmp/build.log"
  printf 'controlplane build: building %s %s (log: %s)\n' "$comp" "$(version_of "$comp")" "$log"
  local t0=$SECONDS
  progress "$log" "$comp" & pid=$!
  (cd "$here/go/$comp" && "build_$comp" "$tmp") >"$log" 2>&1 || status=$?
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  if [ $status -ne 0 ]; then
    tail -n 40 "$log" >&2
    rm -rf "$tmp"
    die "building $comp failed (exit $status); the last 40 lines of its log are above."
  fi
  rm -f "$tmp/build.log"
  touch "$tmp/.complete"
  rm -rf "$final"
  mv "$tmp" "$final"
  printf 'controlplane build: %s built in %ds\n' "$comp" $((SECONDS - t0))
}

build_etcd() { go build -trimpath -v -ldflags "-s -w" -o "$1/etcd" go.etcd.io/etcd/server/v3; }
build_opa() { go build -trimpath -v -ldflags "-s -w" -o "$1/opa" github.com/open-policy-agent/opa; }
build_helm() {
  # The ldflags of helm's own Makefile: the release version (else `helm version` says "unreleased")
  # and the Kubernetes version helm assumes without a cluster (lint, template), which the Makefile
  # derives from the client-go it is built with (v0.37 -> 1.37); the tests pass --kube-version.
  local cg major minor ld="-s -w"
  cg=$(go list -m -f '{{.Version}}' k8s.io/client-go | sed 's/^v//')
  major=$(( $(echo "$cg" | cut -d. -f1) + 1 ))
  minor=$(echo "$cg" | cut -d. -f2)
  ld+=" -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.metadata="
  ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  ld+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$major -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
  ld+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$major -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
  go build -trimpath -v -ldflags "$ld" -o "$1/helm" helm.sh/helm/v3/cmd/helm
}
build_kwok() {
  go build -trimpath -v -ldflags "-s -w" -o "$1/kwok" sigs.k8s.io/kwok/cmd/kwok
  # Standalone kwok needs Stage objects: take the ones kwokctl injects by default from the module source.
  local dir
  dir=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  [ -d "$dir" ] || { echo "kwok module source not found"; return 1; }
  local first=1 f
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [ $first -eq 1 ] || echo '---'
    first=0
    cat "$dir/kustomize/stage/$f"
  done >"$1/kwok-stages.yaml"
}
build_k8s() {
  local v=$K8S_VERSION minor
  minor=$(echo "$v" | cut -d. -f2)
  local ld="-s -w"
  ld+=" -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1"
  ld+=" -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  ld+=" -X k8s.io/client-go/pkg/version.gitVersion=$v -X k8s.io/client-go/pkg/version.gitMajor=1"
  ld+=" -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  go build -trimpath -v -ldflags "$ld" -o "$1/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
}

only=${1:-}
for c in $components; do
  if [ -z "$only" ] || [ "$only" = "$c" ]; then build_one "$c"; fi
done
echo "$cache_root"
