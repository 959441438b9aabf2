# Image URL to use for building and pushing the manager image.
IMG ?= datasette-token-operator:latest

# Version stamped into both binaries (manager --version, datasette-token --version) and the image.
# DATE is the commit's date, so that one commit always gives the same binaries and image.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DATE ?= $(shell TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo 1970-01-01T00:00:00Z)
VERSION_PKG = github.com/datasette-token-operator/datasette-token-operator/internal/version
LDFLAGS ?= -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Commit=$(COMMIT) -X $(VERSION_PKG).Date=$(DATE)

# Get the currently used golang install path (in GOPATH/bin, unless GOBIN is set).
ifeq (,$(shell go env GOBIN))
GOBIN=$(shell go env GOPATH)/bin
else
GOBIN=$(shell go env GOBIN)
endif

# CONTAINER_TOOL defines the container tool to be used for building images.
CONTAINER_TOOL ?= docker

# Setting SHELL to bash allows bash commands to be executed by recipes.
SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

##@ General

# The help target prints out all targets with their descriptions organized beneath their
# categories. The categories are represented by '##@' and the target descriptions by '##'.

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate the CRD and the ClusterRole from the code's markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./..." output:crd:artifacts:config=config/crd/bases

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods for the API types.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: fmt
fmt: ## Run go fmt against code.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet against code.
	go vet ./...

.PHONY: test
test: manifests generate fmt vet envtest kustomize ## Run every unit test and the envtest suite against a real kube-apiserver and etcd.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" DATASETTE_TOKEN_REQUIRE_ENVTEST=1 go test ./... -coverprofile cover.out

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (default 1m).
	@for pkg in ./pkg/itsdangerous ./pkg/dstoken; do \
	  for t in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzzing $$pkg $$t"; go test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done
FUZZTIME ?= 1m

.PHONY: bench
bench: ## Run the benchmarks (mint and verify beside a raw HMAC-SHA1, and a whole create-token process).
	go test -run='^$$' -bench=. -benchmem ./pkg/... ./internal/...

.PHONY: lint
lint: golangci-lint ## Run golangci-lint.
	$(GOLANGCI_LINT) run

.PHONY: lint-fix
lint-fix: golangci-lint ## Run golangci-lint and fix what it can.
	$(GOLANGCI_LINT) run --fix

.PHONY: bench-operator
bench-operator: manifests envtest ## Measure the operator at scale beside the raw API floor on a local control plane (BENCH_ARGS="-n 2000").
	go build -o bin/manager ./cmd/manager
	go build -o bin/bench-operator ./hack/bench-operator
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" bin/bench-operator -manager bin/manager -crds config/crd/bases $(BENCH_ARGS)
BENCH_ARGS ?=

.PHONY: bench-failover
bench-failover: manifests envtest ## Two managers with leader election; the leader SIGKILLed mid-rotation of FAILOVER_TOKENS (2 000): takeover time and tokens minted twice.
	FAILOVER_TOKENS=$(FAILOVER_TOKENS) KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go test ./controllers -run '^TestLeaderFailoverMidRotation$$' -count=1 -v -timeout 20m
FAILOVER_TOKENS ?= 2000

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build bin/manager, bin/datasette-token and bin/kubectl-datasette (the kubectl plugin).
	go build -ldflags "$(LDFLAGS)" -o bin/manager ./cmd/manager
	go build -ldflags "$(LDFLAGS)" -o bin/datasette-token ./cmd/datasette-token
	go build -ldflags "$(LDFLAGS)" -o bin/kubectl-datasette ./cmd/kubectl-datasette

.PHONY: run
run: manifests generate fmt vet ## Run the controller from your host against the cluster in KUBECONFIG.
	go run ./cmd/manager

.PHONY: docker-build
docker-build: ## Build the manager image.
	$(CONTAINER_TOOL) build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) --build-arg DATE=$(DATE) -t ${IMG} .

.PHONY: docker-push
docker-push: ## Push the manager image.
	$(CONTAINER_TOOL) push ${IMG}

IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
comma := ,

SBOM = dist/manager.sbom.cdx.json

.PHONY: api-docs
api-docs: crd-ref-docs ## Generate docs/api.md, the API reference, from the Go types in api/ (re-run after changing them).
	$(CRD_REF_DOCS) --source-path=./api --config=hack/crd-ref-docs/config.yaml --renderer=markdown \
	  --output-mode=single --output-path=docs/api.md --log-level=ERROR

.PHONY: api-docs-check
api-docs-check: api-docs ## CI: fail when docs/api.md is not what make api-docs writes from the current types.
	@git diff --exit-code -- docs/api.md || { echo "docs/api.md is stale: run make api-docs and commit it" >&2; exit 1; }

.PHONY: sbom
sbom: cyclonedx-gomod ## Write dist/manager.sbom.cdx.json: a CycloneDX SBOM of the manager's module graph at HEAD (as the image builds it).
	@mkdir -p dist
	@git diff --quiet HEAD -- go.mod go.sum || echo "sbom: go.mod or go.sum has uncommitted changes; the SBOM describes HEAD" >&2
	@# From a shallow clone of HEAD: cyclonedx-gomod reads the version from git and cannot read a worktree's.
	src=$$(mktemp -d) && trap 'rm -rf "$$src"' EXIT && git clone -q --depth 1 "file://$(CURDIR)" "$$src" && \
	  (cd "$$src" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(CYCLONEDX_GOMOD) app -json -std -licenses -noserial -notimestamp \
	    -main cmd/manager -output "$(CURDIR)/$(SBOM)" .)
	@ls -l $(SBOM)

.PHONY: sbom-check
sbom-check: sbom ## CI: make sbom, and check the SBOM is the manager's module graph.
	DATASETTE_TOKEN_REQUIRE_SBOM=1 go test ./test/sbom -count=1

.PHONY: image
image: sbom ## Build dist/manager-image.tar (IMG, amd64 and arm64) without a container daemon, and check it; its annotations record the SBOM's digest.
	@rm -rf dist/bin
	@for p in $(subst $(comma), ,$(IMAGE_PLATFORMS)); do \
	  for b in manager datasette-token; do \
	    echo "go build $$p $$b"; \
	    CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} go build -trimpath -ldflags "-s -w $(LDFLAGS)" \
	      -o dist/bin/$${p%/*}_$${p#*/}/$$b ./cmd/$$b || exit 1; \
	  done; \
	done
	go run ./hack/image --bin-dir dist/bin --platforms $(IMAGE_PLATFORMS) --ref $(IMG) \
	  --version $(VERSION) --revision $(COMMIT) --created $(DATE) --sbom $(SBOM) --out dist/manager-image.tar
	go test ./hack/image -run '^TestRealImage$$' -count=1
	@ls -l dist/manager-image.tar

# kustomize-build-with-image builds config/$(1) with the manager image set to IMG, from a copy of
# config/ in a temporary directory, so that no tracked file changes.
define kustomize-build-with-image
tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cp -R config "$$tmp/" && \
  (cd "$$tmp/config/manager" && $(KUSTOMIZE) edit set image controller=${IMG}) && \
  $(KUSTOMIZE) build "$$tmp/config/$(1)"
endef

.PHONY: build-installer
build-installer: manifests generate kustomize ## Write dist/install.yaml for IMG: the CRDs and every resource needed to deploy the operator.
	mkdir -p dist
	{ echo "# datasette-token-operator $(VERSION) ($(COMMIT)), image ${IMG}"; \
	  $(call kustomize-build-with-image,default); } > dist/install.yaml.tmp
	mv dist/install.yaml.tmp dist/install.yaml

##@ Shipping

CHART = charts/datasette-token-operator

.PHONY: helm-crds
helm-crds: manifests ## Copy config/crd/bases into the chart's files/crds/, which templates/crds.yaml renders (a test checks they are identical).
	mkdir -p $(CHART)/files/crds
	rm -f $(CHART)/files/crds/*.yaml
	cp config/crd/bases/*.yaml $(CHART)/files/crds/

.PHONY: helm-files
helm-files: manifests ## Copy the CRDs, ClusterRole rules, tenant roles, alerts and dashboard into the chart, and the alerts into the PrometheusRule.
	$(MAKE) helm-crds
	cp config/rbac/role.yaml $(CHART)/files/manager-role.yaml
	cp config/rbac/admission_policy.yaml $(CHART)/files/admission-policy.yaml
	mkdir -p $(CHART)/files/tenant-roles
	rm -f $(CHART)/files/tenant-roles/*.yaml
	cp config/rbac/datasettetoken_*_role.yaml config/rbac/datasettesigner_*_role.yaml $(CHART)/files/tenant-roles/
	cp config/prometheus/alerts.yaml $(CHART)/files/alerts.yaml
	cp config/grafana/dashboard.json $(CHART)/files/dashboard.json
	{ sed -n '1,/^spec:$$/p' config/prometheus/prometheusrule.yaml; \
	  sed -n '/^groups:/,$$p' config/prometheus/alerts.yaml | sed 's/^./  &/'; } > config/prometheus/prometheusrule.yaml.tmp
	mv config/prometheus/prometheusrule.yaml.tmp config/prometheus/prometheusrule.yaml

.PHONY: helm-check
helm-check: helm ## helm lint and helm template, with the default values and with every toggle on.
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) -f $(CHART)/ci/all-on-values.yaml
	$(HELM) template datasette-token-operator $(CHART) --namespace datasette-token-operator-system >/dev/null
	$(HELM) template datasette-token-operator $(CHART) --namespace datasette-token-operator-system -f $(CHART)/ci/all-on-values.yaml >/dev/null

.PHONY: test-alerts
test-alerts: promtool ## promtool check and unit-test the alerts; check the dashboard's queries parse.
	$(PROMTOOL) check rules config/prometheus/alerts.yaml
	$(PROMTOOL) test rules config/prometheus/alerts_test.yaml
	PROMTOOL=$(PROMTOOL) go test ./test/monitoring -run '^TestDashboardQueriesParse$$' -count=1 -v | grep -E '^(--- |ok|FAIL)'

##@ Local cluster

.PHONY: envtest
envtest: ## Build kube-apiserver and etcd from Go modules into bin/k8s/ (cold: 10-25 minutes on 2 cores).
	@hack/build-envtest.sh $(LOCALBIN) >/dev/null

.PHONY: dev-cluster
dev-cluster: envtest ## Start a local control plane with the CRDs installed; prints KUBECONFIG=<path>.
	@go build -o $(LOCALBIN)/dev-cluster/dev-cluster ./hack/dev-cluster
	@KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" exec $(LOCALBIN)/dev-cluster/dev-cluster --kubeconfig-out $(LOCALBIN)/dev-cluster/kubeconfig

.PHONY: demo
demo: envtest ## The whole thing end to end: a local control plane, the operator and a sample token.
	@KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" hack/demo.sh

##@ Deployment

ifndef ignore-not-found
  ignore-not-found = false
endif

.PHONY: install
install: manifests kustomize ## Install the CRD into the cluster in KUBECONFIG.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) apply -f -

.PHONY: uninstall
uninstall: manifests kustomize ## Uninstall the CRD. Call with ignore-not-found=true to ignore missing resources.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -f -

.PHONY: deploy
deploy: manifests kustomize ## Deploy the controller to the cluster in KUBECONFIG.
	$(call kustomize-build-with-image,default) | $(KUBECTL) apply -f -

.PHONY: undeploy
undeploy: kustomize ## Undeploy the controller. Call with ignore-not-found=true to ignore missing resources.
	$(KUSTOMIZE) build config/default | $(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -f -

##@ Dependencies

## Location to install dependencies to
LOCALBIN ?= $(shell pwd)/bin
$(LOCALBIN):
	mkdir -p $(LOCALBIN)

## Tool Binaries
KUBECTL ?= kubectl
KUSTOMIZE ?= $(LOCALBIN)/kustomize
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
GOLANGCI_LINT = $(LOCALBIN)/golangci-lint
HELM ?= $(LOCALBIN)/helm
PROMTOOL ?= $(LOCALBIN)/promtool
CYCLONEDX_GOMOD ?= $(LOCALBIN)/cyclonedx-gomod
CRD_REF_DOCS ?= $(LOCALBIN)/crd-ref-docs

## Tool Versions
KUSTOMIZE_VERSION ?= v5.8.1
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0
HELM_VERSION ?= v3.22.0
CYCLONEDX_GOMOD_VERSION ?= v1.10.0
CRD_REF_DOCS_VERSION ?= v0.3.0
## promtool is versioned as the Go module github.com/prometheus/prometheus: v0.316.0 is Prometheus v3.16.0.
PROMTOOL_VERSION ?= v0.316.0

## The control plane's version follows go.mod's k8s.io/api (v0.37.N -> v1.37.N).
K8S_VERSION = $(shell go list -m -f '{{.Version}}' k8s.io/api | sed 's/^v0/1/')
ENVTEST_ASSETS = $(LOCALBIN)/k8s/$(K8S_VERSION)-$(shell go env GOOS)-$(shell go env GOARCH)

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Build kustomize into bin/.
$(KUSTOMIZE): $(LOCALBIN)
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION))

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Build controller-gen into bin/.
$(CONTROLLER_GEN): $(LOCALBIN)
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION))

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Build golangci-lint into bin/.
$(GOLANGCI_LINT): $(LOCALBIN)
	$(call go-install-tool,$(GOLANGCI_LINT),github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION))

.PHONY: helm
helm: $(HELM) ## Build helm into bin/.
$(HELM): $(LOCALBIN)
	$(call go-install-tool,$(HELM),helm.sh/helm/v3/cmd/helm,$(HELM_VERSION))

.PHONY: promtool
promtool: $(PROMTOOL) ## Build promtool into bin/.
$(PROMTOOL): $(LOCALBIN)
	$(call go-install-tool,$(PROMTOOL),github.com/prometheus/prometheus/cmd/promtool,$(PROMTOOL_VERSION))

.PHONY: cyclonedx-gomod
cyclonedx-gomod: $(CYCLONEDX_GOMOD) ## Build cyclonedx-gomod into bin/.
$(CYCLONEDX_GOMOD): $(LOCALBIN)
	$(call go-install-tool,$(CYCLONEDX_GOMOD),github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod,$(CYCLONEDX_GOMOD_VERSION))

.PHONY: crd-ref-docs
crd-ref-docs: $(CRD_REF_DOCS) ## Build crd-ref-docs into bin/.
$(CRD_REF_DOCS): $(LOCALBIN)
	$(call go-install-tool,$(CRD_REF_DOCS),github.com/elastic/crd-ref-docs,$(CRD_REF_DOCS_VERSION))

# go-install-tool will 'go install' any package with custom target and name of binary, if it doesn't exist
# $1 - target path with name of binary
# $2 - package url which can be installed
# $3 - specific version of package
define go-install-tool
@[ -f "$(1)-$(3)" ] && [ "$$(readlink -- "$(1)" 2>/dev/null)" = "$$(realpath -- "$(1)-$(3)")" ] || { \
set -e; \
package=$(2)@$(3) ;\
echo "Downloading $${package}" ;\
rm -f $(1) ;\
GOBIN=$(LOCALBIN) go install $${package} ;\
mv $(1) $(1)-$(3) ;\
} ;\
ln -sf $$(realpath -- "$(1)-$(3)") $(1)
endef
