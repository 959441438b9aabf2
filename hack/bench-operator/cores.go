package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// splitCores gives kube-apiserver and etcd every CPU this process may use but the last, and the
// harness the last; the manager, which the harness starts afterwards, inherits it. The API server
// then has cores of its own, as in a cluster where the operator runs on a worker node, and the
// clients — the operator's or the floor's — share the other with the harness's watch. It returns
// which CPUs went where.
func splitCores() (string, error) {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return "", fmt.Errorf("reading this process's CPUs: %w", err)
	}
	var cpus []int
	for cpu := range 1024 { // CPUSet's capacity
		if allowed.IsSet(cpu) {
			cpus = append(cpus, cpu)
		}
	}
	if len(cpus) < 2 {
		return "", fmt.Errorf("-split-cores needs at least 2 CPUs, this process may use %d", len(cpus))
	}
	var server, clients unix.CPUSet
	for _, cpu := range cpus[:len(cpus)-1] {
		server.Set(cpu)
	}
	clients.Set(cpus[len(cpus)-1])
	self := os.Getpid()
	pinned := 0
	for _, p := range processes() {
		if p.ppid != self || !slices.Contains(controlPlaneNames, p.name) {
			continue
		}
		if err := pinThreads(p.pid, &server); err != nil {
			return "", fmt.Errorf("pinning %s: %w", p.name, err)
		}
		pinned++
	}
	if pinned != len(controlPlaneNames) {
		return "", fmt.Errorf("-split-cores: found %d of the control plane's %d processes among the harness's children", pinned, len(controlPlaneNames))
	}
	// Twice: a thread started while the first pass ran may have been cloned from one not yet pinned.
	for range 2 {
		if err := pinThreads(self, &clients); err != nil {
			return "", fmt.Errorf("pinning the harness: %w", err)
		}
	}
	return fmt.Sprintf("kube-apiserver and etcd on CPUs %v, the harness and the manager on CPU %d", cpus[:len(cpus)-1], cpus[len(cpus)-1]), nil
}

// pinThreads sets the CPU affinity of every thread of process pid; threads started later inherit
// it from the thread that starts them.
func pinThreads(pid int, set *unix.CPUSet) error {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return err
	}
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, set); err != nil && !errors.Is(err, unix.ESRCH) { // ESRCH: the thread ended
			return fmt.Errorf("thread %d: %w", tid, err)
		}
	}
	return nil
}
