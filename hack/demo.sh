#!/usr/bin/env bash
# make demo: a local control plane (as `make dev-cluster` starts it), the operator, and the sample
# signing Secret and DatasetteToken from config/samples, end to end. Stays up until interrupted.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
: "${KUBEBUILDER_ASSETS:?run make demo, which builds the control plane with make envtest}"
command -v kubectl >/dev/null || { echo "make demo needs kubectl on PATH" >&2; exit 1; }

demo=bin/demo
mkdir -p "$demo"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "building bin/manager, bin/datasette-token and the local control plane launcher"
go build -o bin/manager ./cmd/manager
go build -o bin/datasette-token ./cmd/datasette-token
go build -o bin/dev-cluster/dev-cluster ./hack/dev-cluster

pids=()
cleanup() {
  trap - EXIT INT TERM
  say "stopping"
  kill "$watchdog" 2>/dev/null || true
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -INT "${pids[i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'cleanup; exit 0' INT TERM
# Stop with whoever started us (make, say), even when only it was signalled.
parent=$PPID
(while kill -0 "$parent" 2>/dev/null; do sleep 1; done; kill -TERM $$ 2>/dev/null) &
watchdog=$!

say "starting a local control plane (kube-apiserver and etcd)"
bin/dev-cluster/dev-cluster --kubeconfig-out "$demo/kubeconfig" >"$demo/dev-cluster.out" 2>"$demo/dev-cluster.log" &
pids+=($!)
for _ in $(seq 120); do grep -qs '^KUBECONFIG=' "$demo/dev-cluster.out" && break; sleep 1; done
grep -q '^KUBECONFIG=' "$demo/dev-cluster.out" || { cat "$demo/dev-cluster.log" >&2; exit 1; }
export "$(grep '^KUBECONFIG=' "$demo/dev-cluster.out")"

say "starting the operator (logs in $demo/manager.log, metrics on http://127.0.0.1:18080/metrics)"
bin/manager --health-probe-bind-address=0 --metrics-bind-address=127.0.0.1:18080 --metrics-secure=false >"$demo/manager.log" 2>&1 &
pids+=($!)

say "kubectl apply -k config/samples"
kubectl apply -k config/samples
kubectl wait --for=condition=Ready datasettetoken/ci-writer --timeout=120s

say "kubectl get dstok"
kubectl get dstok -o wide

say "the minted token (Secret ci-writer-token, key token)"
token=$(kubectl get secret ci-writer-token -o jsonpath='{.data.token}' | base64 -d)
echo "$token"

say "would Datasette accept it? datasette-token verify"
DATASETTE_SECRET=$(kubectl get secret datasette -o jsonpath='{.data.DATASETTE_SECRET}' | base64 -d) \
  bin/datasette-token verify "$token"

say "what it claims: datasette-token decode"
bin/datasette-token decode "$token"

say "metrics"
curl -fsS http://127.0.0.1:18080/metrics 2>/dev/null | grep '^datasette_token' || true

say "the cluster stays up; press Ctrl-C to stop"
echo "KUBECONFIG=$KUBECONFIG"
wait "${pids[0]}"
