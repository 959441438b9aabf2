package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

// TestSBOMAnnotations: with --sbom the index and every image carry the SBOM's digest and format;
// a file that is not a CycloneDX document is refused.
func TestSBOMAnnotations(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "manager.sbom.cdx.json")
	doc := []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6","components":[]}`)
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	rec, err := readSBOM(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(doc)
	if rec.digest != "sha256:"+hex.EncodeToString(sum[:]) || rec.format != "CycloneDX-1.6+json" {
		t.Errorf("record %+v", rec)
	}
	o := dummyOptions(t)
	o.sbom = rec
	if err := writeArchive(o.out, o.ref, mustIndex(t, o)); err != nil {
		t.Fatal(err)
	}
	want := o.annotations()
	if want[annotationSBOMDigest] != rec.digest {
		t.Fatalf("annotations %v lack the SBOM", want)
	}
	checkArchive(t, o.out, o.ref, twoPlatforms, want)

	bad := filepath.Join(dir, "spdx.json")
	if err := os.WriteFile(bad, []byte(`{"spdxVersion":"SPDX-2.3"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readSBOM(bad); err == nil {
		t.Error("an SPDX document was taken for CycloneDX")
	}
	if o := dummyOptions(t); len(o.annotations()) != 6 {
		t.Errorf("without --sbom: %d annotations, want the 6 OCI ones", len(o.annotations()))
	}
}
