// Command dev-cluster runs a local Kubernetes control plane (kube-apiserver and etcd, as envtest
// runs them) with the DatasetteToken CRD installed, writes a kubeconfig, prints one line
// "KUBECONFIG=<path>", and stays up until interrupted, then stops everything it started.
//
// It needs KUBEBUILDER_ASSETS to name the control-plane binaries: `make dev-cluster` builds them
// with `make envtest` and sets it.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

func main() {
	kubeconfig := flag.String("kubeconfig-out", "bin/dev-cluster/kubeconfig", "where to write the kubeconfig")
	crds := flag.String("crds", "config/crd/bases", "the folder of CRDs to install")
	flag.Parse()
	if err := run(*kubeconfig, *crds); err != nil {
		fmt.Fprintln(os.Stderr, "dev-cluster:", err)
		os.Exit(1)
	}
}

func run(kubeconfig, crds string) error {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return errors.New("KUBEBUILDER_ASSETS is not set: run `make dev-cluster`, which builds the control plane with `make envtest`")
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:        []string{crds},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	if _, err := env.Start(); err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	stop := func() error {
		if err := env.Stop(); err != nil {
			return fmt.Errorf("stopping the control plane: %w", err)
		}
		return nil
	}

	admin, err := env.AddUser(envtest.User{Name: "dev-admin", Groups: []string{"system:masters"}}, nil)
	if err == nil {
		err = writeKubeconfig(admin, kubeconfig)
	}
	if err != nil {
		return errors.Join(err, stop())
	}
	abs, _ := filepath.Abs(kubeconfig)
	fmt.Printf("KUBECONFIG=%s\n", abs)

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	select {
	case <-signals:
	case <-orphaned():
	}
	fmt.Fprintln(os.Stderr, "dev-cluster: stopping")
	return errors.Join(stop(), os.Remove(kubeconfig))
}

// orphaned is closed when the process that started this one exits (make, say, killed on its own),
// so that the control plane is never left running behind it.
func orphaned() <-chan struct{} {
	done := make(chan struct{})
	parent := os.Getppid()
	go func() {
		for os.Getppid() == parent {
			time.Sleep(time.Second)
		}
		close(done)
	}()
	return done
}

func writeKubeconfig(user *envtest.AuthenticatedUser, path string) error {
	data, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("making a kubeconfig: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating the kubeconfig's folder: %w", err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("writing the kubeconfig: %w", err)
	}
	return nil
}
