// Package testenv holds what the envtest suites share: where the control plane binaries are,
// whether their absence fails the run, and a buffer that collects a manager's logs.
package testenv

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
)

// Assets returns the folder holding kube-apiserver and etcd: $KUBEBUILDER_ASSETS, else what
// `make envtest` built under repoRoot's bin/k8s/; "" when there is none.
func Assets(repoRoot string) string {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	matches, _ := filepath.Glob(filepath.Join(repoRoot, "bin", "k8s", "*", "kube-apiserver"))
	if len(matches) == 0 {
		return ""
	}
	dir, err := filepath.Abs(filepath.Dir(matches[len(matches)-1]))
	if err != nil {
		return ""
	}
	return dir
}

// Required reports whether a missing control plane must fail the run rather than skip the
// envtest tests: under `make test` (DATASETTE_TOKEN_REQUIRE_ENVTEST) and in CI.
func Required() bool {
	return os.Getenv("DATASETTE_TOKEN_REQUIRE_ENVTEST") != "" || os.Getenv("CI") != ""
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Len is how many bytes have been written.
func (b *SyncBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

// Since is what was written after the first start bytes.
func (b *SyncBuffer) Since(start int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf.Bytes()[min(start, b.buf.Len()):])
}
