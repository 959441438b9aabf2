// Package gitops pins the status contract that GitOps tools read: the Argo CD health.lua scripts
// under config/argocd and kstatus (Flux, cli-utils) are run over the same status fixtures.
// The tests are pure: no API server is involved.
package gitops
