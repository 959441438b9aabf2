// Command image builds the manager's container image without a container daemon: an image index
// for several platforms, each image a single layer holding the static binaries on an empty base
// (no shell, no libc, no /etc/passwd), running as 65532:65532 with /manager as entrypoint.
//
// It writes one tar that every common loader accepts:
//
//   - an OCI image layout (oci-layout, index.json, blobs/sha256/…) whose index.json points at the
//     multi-platform image index, named with the io.containerd.image.name and
//     org.opencontainers.image.ref.name annotations: `ctr images import --all-platforms`,
//     `kind load image-archive`, Docker with the containerd image store, podman, skopeo, crane;
//   - a Docker archive manifest.json naming the first platform's image: `docker load` with
//     Docker's classic image store, which takes one image per tag.
//
// Usage:
//
//	go run ./hack/image --bin-dir dist/bin --platforms linux/amd64,linux/arm64 \
//	  --ref datasette-token-operator:v1.2.3 --version v1.2.3 --revision abc --created 2026-…Z \
//	  --out dist/manager-image.tar
//
// --bin-dir holds <os>_<arch>/manager and <os>_<arch>/datasette-token for each platform.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

func main() {
	var o options
	var platforms, created string
	flag.StringVar(&o.binDir, "bin-dir", "dist/bin", "directory holding <os>_<arch>/<binary> for each platform")
	flag.StringVar(&platforms, "platforms", "linux/amd64,linux/arm64", "comma-separated platforms (os/arch)")
	flag.StringVar(&o.ref, "ref", "datasette-token-operator:latest", "the image's name and tag")
	flag.StringVar(&o.version, "version", "dev", "org.opencontainers.image.version")
	flag.StringVar(&o.revision, "revision", "unknown", "org.opencontainers.image.revision (the commit)")
	flag.StringVar(&created, "created", "1970-01-01T00:00:00Z", "org.opencontainers.image.created (RFC 3339); also every file's time")
	flag.StringVar(&o.source, "source", defaultSource, "org.opencontainers.image.source")
	flag.StringVar(&o.out, "out", "dist/manager-image.tar", "the tar to write")
	var sbom string
	flag.StringVar(&sbom, "sbom", "", "a CycloneDX JSON SBOM whose digest the annotations record")
	flag.Parse()
	if sbom != "" {
		var err error
		if o.sbom, err = readSBOM(sbom); err != nil {
			fail(err)
		}
	}

	var err error
	if o.created, err = time.Parse(time.RFC3339, created); err != nil {
		fail(fmt.Errorf("--created: %w", err))
	}
	for _, p := range strings.Split(platforms, ",") {
		pl, err := parsePlatform(p)
		if err != nil {
			fail(err)
		}
		o.platforms = append(o.platforms, pl)
	}
	idx, err := buildIndex(o)
	if err != nil {
		fail(err)
	}
	if err := writeArchive(o.out, o.ref, idx); err != nil {
		fail(err)
	}
	fmt.Println(o.out)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "image:", err)
	os.Exit(1)
}
