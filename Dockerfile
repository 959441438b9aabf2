# The manager image for people with Docker; `make image` builds the same image without a daemon.
# Build args: VERSION, COMMIT, DATE (make docker-build passes them from git).
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=1970-01-01T00:00:00Z

WORKDIR /workspace
# Copy the Go Modules manifests and cache deps before copying the source, so that
# source changes do not invalidate the downloaded layer.
COPY go.mod go.mod
COPY go.sum go.sum
RUN go mod download

COPY cmd/ cmd/
COPY api/ api/
COPY controllers/ controllers/
COPY pkg/ pkg/
COPY internal/ internal/

# Static binaries (no cgo), for the platform docker buildx asks for (TARGETARCH), else the host's.
RUN pkg=github.com/datasette-token-operator/datasette-token-operator/internal/version && \
    ldflags="-s -w -X $pkg.Version=${VERSION} -X $pkg.Commit=${COMMIT} -X $pkg.Date=${DATE}" && \
    CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath -ldflags "$ldflags" -o manager ./cmd/manager && \
    CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath -ldflags "$ldflags" -o datasette-token ./cmd/datasette-token

# As make image: nothing but the two binaries (no shell, no libc, no /etc/passwd), numeric user.
FROM scratch
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="datasette-token-operator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${DATE}" \
      org.opencontainers.image.source="https://github.com/datasette-token-operator/datasette-token-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder --chmod=0755 /workspace/manager /manager
COPY --from=builder --chmod=0755 /workspace/datasette-token /datasette-token
USER 65532:65532
ENTRYPOINT ["/manager"]
