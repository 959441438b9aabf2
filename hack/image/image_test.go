package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

var twoPlatforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

// TestImageFromDummyBinaries builds an image exactly as make image does, from stand-in binaries,
// and checks what a runtime would see.
func TestImageFromDummyBinaries(t *testing.T) {
	o := dummyOptions(t)
	if err := writeArchive(o.out, o.ref, mustIndex(t, o)); err != nil {
		t.Fatal(err)
	}
	checkArchive(t, o.out, "example.com/team/operator:v1.2.3", twoPlatforms, o.annotations())

	// Each image's layer holds the stand-ins, byte for byte, under their names.
	for _, p := range twoPlatforms {
		files := layerFiles(t, imageFor(t, o.out, p))
		for _, bin := range binaries {
			want := "stand-in " + bin + " for " + p.Architecture
			if got := string(files[bin]); got != want {
				t.Errorf("%s /%s = %q, want %q", p.Architecture, bin, got, want)
			}
		}
	}
}

// TestImageIsReproducible checks that the same inputs give the same bytes.
func TestImageIsReproducible(t *testing.T) {
	o := dummyOptions(t)
	first, second := filepath.Join(t.TempDir(), "a.tar"), filepath.Join(t.TempDir(), "b.tar")
	for _, out := range []string{first, second} {
		if err := writeArchive(out, o.ref, mustIndex(t, o)); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := os.ReadFile(first)
	b, _ := os.ReadFile(second)
	if !bytes.Equal(a, b) {
		t.Error("two builds of the same inputs differ")
	}
}

func TestImageNeedsEveryBinary(t *testing.T) {
	o := dummyOptions(t)
	if err := os.Remove(filepath.Join(o.binDir, "linux_arm64", "datasette-token")); err != nil {
		t.Fatal(err)
	}
	if _, err := buildIndex(o); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("buildIndex with a binary missing: %v, want a not-exist error", err)
	}
	o.platforms = nil
	if _, err := buildIndex(o); !errors.Is(err, errNoPlatform) {
		t.Errorf("buildIndex with no platform: %v, want errNoPlatform", err)
	}
}

func TestParsePlatform(t *testing.T) {
	for in, ok := range map[string]bool{"linux/amd64": true, " linux/arm64": true, "linux": false, "linux/": false, "/amd64": false, "linux/arm/v7": false} {
		if _, err := parsePlatform(in); (err == nil) != ok {
			t.Errorf("parsePlatform(%q): %v", in, err)
		}
	}
}

// TestRealImage checks dist/manager-image.tar, which make image writes, when it exists: both
// platforms, and in each a static executable for that architecture.
func TestRealImage(t *testing.T) {
	path := filepath.Join("..", "..", "dist", "manager-image.tar")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s does not exist: run make image to check it", path)
	}
	idx, ref := readIndex(t, path)
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	annotations := im.Annotations
	if annotations["org.opencontainers.image.version"] == "" || annotations["org.opencontainers.image.revision"] == "" {
		t.Errorf("index annotations lack a version or revision: %v", annotations)
	}
	checkArchive(t, path, ref, twoPlatforms, annotations)
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	for _, p := range twoPlatforms {
		files := layerFiles(t, imageFor(t, path, p))
		for _, bin := range binaries {
			f, err := elf.NewFile(bytes.NewReader(files[bin]))
			if err != nil {
				t.Fatalf("%s /%s: %v", p.Architecture, bin, err)
			}
			if f.Machine != machines[p.Architecture] {
				t.Errorf("%s /%s is for %s", p.Architecture, bin, f.Machine)
			}
			for _, prog := range f.Progs {
				if prog.Type == elf.PT_INTERP {
					t.Errorf("%s /%s is dynamically linked (it has an interpreter): build it with CGO_ENABLED=0", p.Architecture, bin)
				}
			}
		}
	}
}

// checkArchive opens the tar both ways a loader would, and checks every image in it.
func checkArchive(t *testing.T, path, wantRef string, platforms []v1.Platform, wantLabels map[string]string) {
	t.Helper()
	idx, ref := readIndex(t, path)
	if ref != wantRef {
		t.Errorf("io.containerd.image.name = %q, want %q", ref, wantRef)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != len(platforms) {
		t.Fatalf("index has %d images, want %d", len(im.Manifests), len(platforms))
	}
	for i, desc := range im.Manifests {
		want := platforms[i]
		if desc.Platform == nil || desc.Platform.OS != want.OS || desc.Platform.Architecture != want.Architecture {
			t.Errorf("index entry %d is for %v, want %v", i, desc.Platform, want)
		}
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		checkImage(t, img, want, wantLabels)
		// OCI annotations, on the image manifest and on its index entry (a Docker archive has none).
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range wantLabels {
			if m.Annotations[k] != v || desc.Annotations[k] != v {
				t.Errorf("%s: annotation %s = %q in the manifest, %q in the index, want %q", want.Architecture, k, m.Annotations[k], desc.Annotations[k], v)
			}
		}
	}

	// Docker's classic store reads manifest.json: the first platform's image, under the name.
	tag, err := name.NewTag(wantRef)
	if err != nil {
		t.Fatal(err)
	}
	docker, err := tarball.ImageFromPath(path, &tag)
	if err != nil {
		t.Fatalf("as a Docker archive: %v", err)
	}
	checkImage(t, docker, platforms[0], wantLabels)
	first, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	dockerID, _ := docker.ConfigName()
	firstID, _ := first.ConfigName()
	if dockerID != firstID {
		t.Errorf("manifest.json names image %s, the index's first is %s", dockerID, firstID)
	}
}

func checkImage(t *testing.T, img v1.Image, p v1.Platform, wantLabels map[string]string) {
	t.Helper()
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != p.OS || cfg.Architecture != p.Architecture {
		t.Errorf("config is for %s/%s, want %s", cfg.OS, cfg.Architecture, p.String())
	}
	if cfg.Config.User != "65532:65532" {
		t.Errorf("%s: user %q, want 65532:65532", p.Architecture, cfg.Config.User)
	}
	if strings.Join(cfg.Config.Entrypoint, " ") != "/manager" || len(cfg.Config.Cmd) != 0 {
		t.Errorf("%s: entrypoint %q cmd %q, want [/manager] and no cmd", p.Architecture, cfg.Config.Entrypoint, cfg.Config.Cmd)
	}
	for k, v := range wantLabels {
		if cfg.Config.Labels[k] != v {
			t.Errorf("%s: label %s = %q, want %q", p.Architecture, k, cfg.Config.Labels[k], v)
		}
	}
	for _, k := range []string{"version", "revision", "created", "source", "licenses", "title"} {
		if cfg.Config.Labels["org.opencontainers.image."+k] == "" {
			t.Errorf("%s: no org.opencontainers.image.%s label", p.Architecture, k)
		}
	}
	// Nothing but the binaries: no shell, no libc, no /etc.
	files := layerFiles(t, img)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	want := append([]string(nil), binaries...)
	sort.Strings(want)
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("%s: the filesystem holds %v, want exactly %v (and so no /bin/sh)", p.Architecture, names, want)
	}
}

// readIndex extracts the tar and opens it as an OCI image layout, returning the image index that
// index.json names and that name.
func readIndex(t *testing.T, path string) (v1.ImageIndex, string) {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dir, filepath.FromSlash(hdr.Name))
		if !strings.HasPrefix(target, dir+string(filepath.Separator)) {
			t.Fatalf("tar entry %q escapes the directory", hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(target, data, 0o644); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("tar entry %q has type %c", hdr.Name, hdr.Typeflag)
		}
	}
	root, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("as an OCI layout: %v", err)
	}
	rm, err := root.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(rm.Manifests) != 1 {
		t.Fatalf("index.json names %d entries, want 1", len(rm.Manifests))
	}
	idx, err := root.ImageIndex(rm.Manifests[0].Digest)
	if err != nil {
		t.Fatalf("index.json's entry is not an image index: %v", err)
	}
	ann := rm.Manifests[0].Annotations
	ref := ann["io.containerd.image.name"]
	if tag, err := name.NewTag(ref); err != nil || tag.TagStr() != ann["org.opencontainers.image.ref.name"] {
		t.Errorf("index.json names %q (tag %q): %v", ref, ann["org.opencontainers.image.ref.name"], err)
	}
	return idx, ref
}

func imageFor(t *testing.T, path string, p v1.Platform) v1.Image {
	t.Helper()
	idx, _ := readIndex(t, path)
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.Architecture == p.Architecture {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			return img
		}
	}
	t.Fatalf("no image for %s", p.String())
	return nil
}

// layerFiles reads every file of every layer, by path without the leading slash.
func layerFiles(t *testing.T, img v1.Image) map[string][]byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			hdr, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if hdr.Typeflag == tar.TypeReg && hdr.Mode&0o111 == 0 {
				t.Errorf("/%s is not executable (mode %o)", hdr.Name, hdr.Mode)
			}
			if hdr.Uid != 0 || hdr.Gid != 0 {
				t.Errorf("/%s is owned by %d:%d, want root (the user cannot modify it)", hdr.Name, hdr.Uid, hdr.Gid)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[strings.TrimPrefix(hdr.Name, "/")] = data
		}
		_ = rc.Close()
	}
	return files
}

func dummyOptions(t *testing.T) options {
	t.Helper()
	dir := t.TempDir()
	for _, p := range twoPlatforms {
		sub := filepath.Join(dir, p.OS+"_"+p.Architecture)
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, bin := range binaries {
			if err := os.WriteFile(filepath.Join(sub, bin), []byte("stand-in "+bin+" for "+p.Architecture), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return options{
		binDir:    dir,
		platforms: twoPlatforms,
		ref:       "example.com/team/operator:v1.2.3",
		version:   "v1.2.3",
		revision:  "0123456789abcdef",
		created:   time.Date(2026, 11, 27, 4, 25, 25, 0, time.UTC),
		source:    defaultSource,
		out:       filepath.Join(t.TempDir(), "image.tar"),
	}
}

func mustIndex(t *testing.T, o options) v1.ImageIndex {
	t.Helper()
	idx, err := buildIndex(o)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}
