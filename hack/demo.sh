#!/usr/bin/env bash
# make demo: a local control plane (as `make dev-cluster` starts it), the operator, and the samples
# from config/samples (a ClusterDatasetteSigner with a policy and a token minted with it), a token
# the policy refuses, and a Deployment restarted by a renew-now. Stays up until interrupted.
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

say "kubectl apply -k config/samples: a ClusterDatasetteSigner with a policy, and a token that uses it"
kubectl apply -k config/samples
kubectl -n analytics wait --for=condition=Ready datasettetoken/ci-writer --timeout=120s
kubectl get cdssigner -o wide

say "a token the policy refuses (actor root is denied): PolicyViolation, and no Secret is written"
kubectl apply -f hack/demo-objects/refused-token.yaml
kubectl -n analytics wait --for=jsonpath='{.status.conditions[?(@.type=="Ready")].reason}'=PolicyViolation \
  datasettetoken/root-forever --timeout=60s
kubectl -n analytics get dstok -o wide
kubectl -n analytics get dstok root-forever -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}{"\n"}'
kubectl -n analytics get secret root-forever 2>&1 || true

say "the minted token (Secret analytics/ci-writer-token, key token)"
token=$(kubectl -n analytics get secret ci-writer-token -o jsonpath='{.data.token}' | base64 -d)
echo "$token"

say "would Datasette accept it? datasette-token verify, with the instance's max_signed_tokens_ttl"
kubectl -n datasette get secret datasette -o jsonpath='{.data.DATASETTE_SECRET}' | base64 -d >"$demo/datasette-secret"
echo "$token" | bin/datasette-token verify - --secret-file "$demo/datasette-secret" --max-ttl 86400

say "what it claims: datasette-token decode"
echo "$token" | bin/datasette-token decode -

say "renew now: a Deployment that reads the token from its environment is restarted"
kubectl apply -f hack/demo-objects/report-deployment.yaml
kubectl -n analytics patch dstok ci-writer --type merge -p '{"spec":{"rolloutRestartTargets":[{"kind":"Deployment","name":"report"}]}}'
restarted() { kubectl -n analytics get deployment report -o jsonpath='{.spec.template.metadata.annotations.datasette\.io/restartedAt}'; }
echo "before: restartedAt=$(restarted)"
sleep 1 # a new token is issued in a new second
kubectl -n analytics annotate dstok ci-writer datasette.io/renew-requested-at="$(date -u +%Y-%m-%dT%H:%M:%SZ)" --overwrite
for _ in $(seq 60); do [[ -n $(restarted) ]] && break; sleep 0.5; done
echo "after:  restartedAt=$(restarted)"
kubectl -n analytics get events --field-selector involvedObject.name=ci-writer -o custom-columns=REASON:.reason,MESSAGE:.message | tail -4

say "metrics"
curl -fsS http://127.0.0.1:18080/metrics 2>/dev/null | grep '^datasette_' || true

say "the cluster stays up; press Ctrl-C to stop"
echo "KUBECONFIG=$KUBECONFIG"
wait "${pids[0]}"
