package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	defaultSource = "https://github.com/datasette-token-operator/datasette-token-operator"
	title         = "datasette-token-operator"
	licenses      = "Apache-2.0"
	// user is distroless's "nonroot"; numeric, so no /etc/passwd is needed.
	user       = "65532:65532"
	entrypoint = "/manager"
)

// binaries are copied, in this order, from <bin-dir>/<os>_<arch>/ to the image's root.
var binaries = []string{"manager", "datasette-token"}

var errNoPlatform = errors.New("no platform")

type options struct {
	binDir    string
	platforms []v1.Platform
	ref       string
	version   string
	revision  string
	created   time.Time
	source    string
	out       string
	// sbom, when set, is recorded in the annotations.
	sbom sbomRecord
}

func parsePlatform(s string) (v1.Platform, error) {
	goos, arch, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok || goos == "" || arch == "" || strings.Contains(arch, "/") {
		return v1.Platform{}, fmt.Errorf("platform %q: want os/arch", s)
	}
	return v1.Platform{OS: goos, Architecture: arch}, nil
}

// annotations are the OCI annotations (and image labels) every image and the index carry.
func (o options) annotations() map[string]string {
	return o.sbom.add(map[string]string{
		"org.opencontainers.image.title":    title,
		"org.opencontainers.image.version":  o.version,
		"org.opencontainers.image.revision": o.revision,
		"org.opencontainers.image.created":  o.created.UTC().Format(time.RFC3339),
		"org.opencontainers.image.source":   o.source,
		"org.opencontainers.image.licenses": licenses,
	})
}

// buildIndex builds one image per platform and the index over them.
func buildIndex(o options) (v1.ImageIndex, error) {
	if len(o.platforms) == 0 {
		return nil, errNoPlatform
	}
	var idx v1.ImageIndex = empty.Index
	idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	for _, p := range o.platforms {
		img, err := buildImage(o, p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.String(), err)
		}
		plat := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &plat, Annotations: o.annotations()},
		})
	}
	annotated, ok := mutate.Annotations(idx, o.annotations()).(v1.ImageIndex)
	if !ok {
		return nil, errors.New("annotating the index did not give an index")
	}
	return annotated, nil
}

// buildImage builds the image for one platform: a single layer with the binaries, on nothing.
func buildImage(o options, p v1.Platform) (v1.Image, error) {
	dir := filepath.Join(o.binDir, p.OS+"_"+p.Architecture)
	layerTar, err := rootLayer(dir, o.created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: o.created}, CreatedBy: "hack/image: " + strings.Join(binaries, ", ")},
	})
	if err != nil {
		return nil, fmt.Errorf("appending the layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Variant = p.OS, p.Architecture, p.Variant
	cfg.Created = v1.Time{Time: o.created}
	cfg.Config = v1.Config{
		User:       user,
		Entrypoint: []string{entrypoint},
		WorkingDir: "/",
		Labels:     o.annotations(),
	}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	annotated, ok := mutate.Annotations(img, o.annotations()).(v1.Image)
	if !ok {
		return nil, errors.New("annotating the image did not give an image")
	}
	return annotated, nil
}

// rootLayer is a tar of the binaries at /, owned by root, mode 0755, all dated t.
func rootLayer(dir string, t time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range binaries {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("binary: %w", err)
		}
		hdr := &tar.Header{
			Name: name, Mode: 0o755, Size: int64(len(data)), ModTime: t.UTC(),
			Typeflag: tar.TypeReg, Format: tar.FormatPAX,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("layer %s: %w", name, err)
		}
		if _, err := tw.Write(data); err != nil {
			return nil, fmt.Errorf("layer %s: %w", name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return buf.Bytes(), nil
}
