package main

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// dockerManifestEntry is one entry of a Docker archive's manifest.json.
type dockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// writeArchive writes idx to out as an OCI image layout in a tar, named ref, with a Docker
// archive manifest.json for the index's first image beside it (see the package comment).
func writeArchive(out, ref string, idx v1.ImageIndex) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("--ref %q: %w", ref, err)
	}
	dir, err := os.MkdirTemp("", "manager-image-")
	if err != nil {
		return fmt.Errorf("temporary layout: %w", err)
	}
	defer func() { _ = os.RemoveAll(dir) }()

	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("OCI layout: %w", err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"io.containerd.image.name":          containerdName(tag),
		"org.opencontainers.image.ref.name": tag.TagStr(),
	})); err != nil {
		return fmt.Errorf("OCI layout: %w", err)
	}
	entry, err := dockerEntry(idx, tag)
	if err != nil {
		return err
	}
	manifest, err := json.Marshal([]dockerManifestEntry{entry})
	if err != nil {
		return fmt.Errorf("manifest.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), manifest, 0o644); err != nil {
		return fmt.Errorf("manifest.json: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	tmp := out + ".tmp"
	if err := tarDir(dir, tmp); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	return nil
}

// containerdName is the fully qualified name containerd and Docker's containerd store use, the one
// a kubelet resolves a short image name to: datasette-token-operator:v1 -> docker.io/library/….
func containerdName(tag name.Tag) string {
	registry := tag.RegistryStr()
	if registry == name.DefaultRegistry {
		registry = "docker.io"
	}
	return registry + "/" + tag.RepositoryStr() + ":" + tag.TagStr()
}

// dockerEntry describes the index's first image in Docker archive terms, pointing at the blobs the
// OCI layout already holds.
func dockerEntry(idx v1.ImageIndex, tag name.Tag) (dockerManifestEntry, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return dockerManifestEntry{}, fmt.Errorf("index: %w", err)
	}
	if len(im.Manifests) == 0 {
		return dockerManifestEntry{}, errNoPlatform
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		return dockerManifestEntry{}, fmt.Errorf("first image: %w", err)
	}
	m, err := img.Manifest()
	if err != nil {
		return dockerManifestEntry{}, fmt.Errorf("first image: %w", err)
	}
	e := dockerManifestEntry{Config: blobPath(m.Config.Digest), RepoTags: []string{tag.String()}}
	for _, l := range m.Layers {
		e.Layers = append(e.Layers, blobPath(l.Digest))
	}
	return e, nil
}

func blobPath(d v1.Hash) string { return "blobs/" + d.Algorithm + "/" + d.Hex }

// tarDir writes the regular files and directories under dir to a tar at out, sorted, owned by root
// and undated, so that the same image always gives the same bytes.
func tarDir(dir, out string) (err error) {
	var paths []string
	if err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != dir {
			paths = append(paths, path)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("reading the layout: %w", err)
	}
	sort.Strings(paths)
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("output: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("output: %w", cerr)
		}
	}()
	tw := tar.NewWriter(f)
	for _, path := range paths {
		if err := addToTar(tw, dir, path); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	return nil
}

func addToTar(tw *tar.Writer, dir, path string) error {
	info, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("reading the layout: %w", err)
	}
	rel := filepath.ToSlash(strings.TrimPrefix(path, dir+string(filepath.Separator)))
	hdr := &tar.Header{Name: rel, ModTime: time.Unix(0, 0).UTC(), Format: tar.FormatPAX}
	switch {
	case info.IsDir():
		hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, rel+"/", 0o755
		return tw.WriteHeader(hdr)
	case info.Mode().IsRegular():
		hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, 0o644, info.Size()
	default:
		return fmt.Errorf("%s: %w", rel, errNotRegular)
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	src, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("reading the layout: %w", err)
	}
	defer func() { _ = src.Close() }()
	if _, err := io.Copy(tw, src); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	return nil
}

var errNotRegular = errors.New("not a regular file or directory in the layout")
