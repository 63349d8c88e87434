#!/usr/bin/env bash
# Builds the local control plane's binaries (kube-apiserver, kube-controller-manager,
# kubectl, helm) with Go from the versions pinned in hack/k8s/go.mod, into a cache
# outside the repo, and prints that bin directory on stdout.
#
#   ${SWITCHBOARD_K8S_CACHE:-~/.cache/switchboard/k8s}/<k8s version>/bin
#
# A binary is rebuilt only when its stamp (go.mod + go.sum + Go version) changed.
# If KUBEBUILDER_ASSETS (the envtest convention, e.g. from setup-envtest) names a
# directory holding kube-apiserver, etcd and kubectl, that directory is printed
# instead and nothing is built, so machines without Go can run the cluster tests.
# etcd itself is not built: it comes from Debian's etcd-server (scripts/install-deps).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  assets=${KUBEBUILDER_ASSETS}
  if [ -x "$assets/kube-apiserver" ] && [ -x "$assets/etcd" ] && [ -x "$assets/kubectl" ]; then
    echo "build.sh: using KUBEBUILDER_ASSETS=$assets" >&2
    echo "$assets"
    exit 0
  fi
  echo "build.sh: KUBEBUILDER_ASSETS=$assets lacks kube-apiserver, etcd or kubectl; building" >&2
fi

module_version() {
  awk -v module="$1" '$1 == module && $2 ~ /^v/ { print $2; exit }' "$here/go.mod"
}
k8s_version=$(module_version k8s.io/kubernetes)
helm_version=$(module_version helm.sh/helm/v3)
if [ -z "$k8s_version" ] || [ -z "$helm_version" ]; then
  echo "build.sh: cannot read the k8s.io/kubernetes and helm versions from $here/go.mod" >&2
  exit 1
fi
need_go=$(awk '$1 == "go" { print $2; exit }' "$here/go.mod")
cache_root=${SWITCHBOARD_K8S_CACHE:-$HOME/.cache/switchboard/k8s}
go_version() { (cd "$here" && go env GOVERSION 2>/dev/null) || echo none; }
recent_enough() {
  local have=${1#go}
  [[ $have == [0-9]* ]] && [ "$(printf '%s\n%s\n' "$need_go" "$have" | sort -V | head -1)" = "$need_go" ]
}
have_go=$(go_version)
if ! recent_enough "$have_go"; then
  # No Go, or one too old (Debian's): take the toolchain from the Go module proxy.
  echo "build.sh: Go >= $need_go needed (found: $have_go); fetching it from the module proxy" >&2
  go_bin=$(python3 "$here/fetch_go.py" "$need_go" "$cache_root/go") || {
    echo "build.sh: could not fetch Go. Install Go >= $need_go from https://go.dev/dl, or point" >&2
    echo "  KUBEBUILDER_ASSETS at a directory holding kube-apiserver, etcd and kubectl." >&2
    exit 1
  }
  export PATH="$go_bin:$PATH" GOTOOLCHAIN=local
  have_go=$(go_version)
fi
have_go=${have_go#go}

cache=$cache_root/$k8s_version
bin=$cache/bin
mkdir -p "$bin"

# One build at a time per cache (parallel test runs share it).
if command -v flock >/dev/null; then
  exec 9>"$cache/.lock"
  flock 9
fi

stamp=$(printf '%s\n' "go$have_go" | cat "$here/go.mod" "$here/go.sum" - | sha256sum | cut -d' ' -f1)

declare -A packages=(
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kubectl]=k8s.io/kubernetes/cmd/kubectl
  [helm]=helm.sh/helm/v3/cmd/helm
)
missing=()
for name in kube-apiserver kube-controller-manager kubectl helm; do
  if [ -x "$bin/$name" ] && [ "$(cat "$bin/.$name.stamp" 2>/dev/null)" = "$stamp" ]; then
    continue
  fi
  missing+=("$name")
done

if [ ${#missing[@]} -gt 0 ]; then
  # What `kubectl version`, the API server's /version and `helm version` report
  # (Kubernetes' own build sets these the same way, in hack/lib/version.sh).
  minor=${k8s_version#v*.}
  minor=${minor%%.*}
  x="-X k8s.io/component-base/version"
  c="-X k8s.io/client-go/pkg/version"
  ldflags="-s -w"
  for v in "$x" "$c"; do
    ldflags+=" $v.gitVersion=$k8s_version $v.gitMajor=1 $v.gitMinor=$minor"
    ldflags+=" $v.gitTreeState=clean"
  done
  ldflags+=" -X helm.sh/helm/v3/internal/version.version=$helm_version"

  targets=()
  for name in "${missing[@]}"; do
    targets+=("${packages[$name]}")
  done
  echo "build.sh: building ${missing[*]} ($k8s_version, helm $helm_version) into $bin" >&2
  work=$(mktemp -d "$cache/build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  (
    cd "$here"
    CGO_ENABLED=0 go build -mod=readonly -buildvcs=false -trimpath -ldflags="$ldflags" \
      -o "$work/" "${targets[@]}"
  )
  for name in "${missing[@]}"; do
    mv -f "$work/$name" "$bin/$name"
    echo "$stamp" >"$bin/.$name.stamp"
  done
fi

echo "$bin"
