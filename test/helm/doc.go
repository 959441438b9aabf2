// Package helm tests the Helm chart in charts/datasette-token-operator: it renders the chart with
// Helm's own engine (no cluster, no helm binary) and checks the result against the kustomize
// sources it must agree with: the CRDs, the ClusterRole controller-gen generates, the alerts and
// the dashboard.
package helm
