package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

const (
	// tokenGroup and tokenKind name the operator's resource.
	tokenGroup = "datasette.io"
	tokenKind  = "DatasetteToken"
	// tokenResource is the DatasetteToken CRD's plural.
	tokenResource = "datasettetokens"
	// floorGroup serves a copy of the DatasetteToken CRD that the operator does not watch: the raw
	// floor writes the same objects, with the same schema and validation, without waking it.
	floorGroup = "bench-floor.datasette.io"
	// clientQPS lifts client-go's default rate limit (5 per second) off the harness's own clients.
	clientQPS = 100000
)

// controlPlane is the local kube-apiserver and etcd, with the harness's clients (an admin user).
type controlPlane struct {
	env        *envtest.Environment
	config     *rest.Config
	kube       kubernetes.Interface
	dyn        dynamic.Interface
	kubeconfig string // an admin kubeconfig for the manager, in the run's work folder
	tokens     schema.GroupVersionResource
	floor      schema.GroupVersionResource
}

// startControlPlane starts kube-apiserver and etcd (KUBEBUILDER_ASSETS names them) with the CRDs
// of crdDir and a floor copy of the DatasetteToken CRD installed, and writes a kubeconfig into
// workDir. The caller must call stop.
func startControlPlane(crdDir, workDir string, attach bool) (*controlPlane, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, errors.New("KUBEBUILDER_ASSETS is not set: run `make bench-operator`, which builds the control plane with `make envtest`")
	}
	tokenCRD, err := readCRD(crdDir, tokenGroup, tokenKind)
	if err != nil {
		return nil, err
	}
	floorCRD := floorCopy(tokenCRD)
	version, err := storageVersion(tokenCRD)
	if err != nil {
		return nil, err
	}

	env := &envtest.Environment{
		CRDDirectoryPaths:        []string{crdDir},
		CRDs:                     []*apiextensionsv1.CustomResourceDefinition{floorCRD},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
		AttachControlPlaneOutput: attach,
	}
	if _, err := env.Start(); err != nil {
		return nil, fmt.Errorf("starting the control plane (kube-apiserver and etcd): %w", err)
	}
	cp := &controlPlane{
		env:    env,
		tokens: schema.GroupVersionResource{Group: tokenGroup, Version: version, Resource: tokenResource},
		floor:  schema.GroupVersionResource{Group: floorGroup, Version: version, Resource: tokenResource},
	}
	if err := cp.connect(workDir); err != nil {
		return nil, errors.Join(err, cp.stop())
	}
	return cp, nil
}

// connect makes the harness's clients and writes the manager's kubeconfig.
func (cp *controlPlane) connect(workDir string) error {
	cp.config = rest.CopyConfig(cp.env.Config)
	cp.config.QPS, cp.config.Burst = clientQPS, clientQPS
	cp.config.UserAgent = "bench-operator"
	var err error
	if cp.kube, err = kubernetes.NewForConfig(cp.config); err != nil {
		return fmt.Errorf("making a Kubernetes client: %w", err)
	}
	if cp.dyn, err = dynamic.NewForConfig(cp.config); err != nil {
		return fmt.Errorf("making a dynamic client: %w", err)
	}
	user, err := cp.env.AddUser(envtest.User{Name: "bench-manager", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("adding the manager's user: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("making the manager's kubeconfig: %w", err)
	}
	cp.kubeconfig = filepath.Join(workDir, "kubeconfig")
	if err := os.WriteFile(cp.kubeconfig, data, 0o600); err != nil {
		return fmt.Errorf("writing the manager's kubeconfig: %w", err)
	}
	return nil
}

// stop stops kube-apiserver and etcd and removes the kubeconfig.
func (cp *controlPlane) stop() error {
	var errs []error
	if cp.kubeconfig != "" {
		if err := os.Remove(cp.kubeconfig); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing the kubeconfig: %w", err))
		}
	}
	if err := cp.env.Stop(); err != nil {
		errs = append(errs, fmt.Errorf("stopping the control plane: %w", err))
	}
	return errors.Join(errs...)
}

// readCRD finds the CustomResourceDefinition of group and kind among the YAML files of dir.
func readCRD(dir, group, kind string) (*apiextensionsv1.CustomResourceDefinition, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no CRD files in %s (run from the repository's root, or pass -crds)", dir)
	}
	for _, file := range files {
		crds, err := decodeCRDs(file)
		if err != nil {
			return nil, err
		}
		for _, crd := range crds {
			if crd.Spec.Group == group && crd.Spec.Names.Kind == kind {
				return crd, nil
			}
		}
	}
	return nil, fmt.Errorf("no CRD for %s.%s in %s", kind, group, dir)
}

// decodeCRDs reads every CustomResourceDefinition of a (possibly multi-document) YAML file.
func decodeCRDs(file string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("reading CRDs: %w", err)
	}
	defer func() { _ = f.Close() }()
	var crds []*apiextensionsv1.CustomResourceDefinition
	decoder := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		err := decoder.Decode(crd)
		if errors.Is(err, io.EOF) {
			return crds, nil
		}
		if err != nil {
			return nil, fmt.Errorf("decoding %s: %w", file, err)
		}
		if crd.Kind == "CustomResourceDefinition" {
			crds = append(crds, crd)
		}
	}
}

// floorCopy returns the CRD served under floorGroup, with the same schema, validation and status.
func floorCopy(crd *apiextensionsv1.CustomResourceDefinition) *apiextensionsv1.CustomResourceDefinition {
	floor := crd.DeepCopy()
	floor.Spec.Group = floorGroup
	floor.Name = crd.Spec.Names.Plural + "." + floorGroup
	floor.ResourceVersion = ""
	floor.Spec.Names.ShortNames = nil
	floor.Spec.Names.Categories = nil
	return floor
}

// storageVersion returns the name of the CRD's storage version.
func storageVersion(crd *apiextensionsv1.CustomResourceDefinition) (string, error) {
	for _, v := range crd.Spec.Versions {
		if v.Storage {
			return v.Name, nil
		}
	}
	return "", fmt.Errorf("CRD %s has no storage version", crd.Name)
}

// apiRequests reads the API server's apiserver_request_total (GET /metrics as the admin user).
func (cp *controlPlane) apiRequests(ctx context.Context) (requestCounts, error) {
	raw, err := cp.kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the API server's metrics: %w", err)
	}
	f, err := parseMetrics(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("reading the API server's metrics: %w", err)
	}
	return apiRequests(f), nil
}
