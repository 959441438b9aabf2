package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// SBOM annotations: the digest of the CycloneDX SBOM of the manager (make sbom writes it to
// dist/manager.sbom.cdx.json and ships it beside the image), on the index and every image.
const (
	annotationSBOMDigest = "io.github.datasette-token-operator.sbom.digest"
	annotationSBOMFormat = "io.github.datasette-token-operator.sbom.format"
	// maxSBOMSize bounds the file read.
	maxSBOMSize = 64 << 20
)

// errNotCycloneDX is wrapped by readSBOM's error for a file that is not a CycloneDX JSON document.
var errNotCycloneDX = errors.New("not a CycloneDX JSON document")

// sbomRecord is what the annotations say of an SBOM.
type sbomRecord struct {
	digest, format string
}

// readSBOM checks that path is a CycloneDX JSON document and returns its digest and format.
func readSBOM(path string) (sbomRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return sbomRecord{}, fmt.Errorf("--sbom: %w", err)
	}
	defer func() { _ = f.Close() }()
	data, err := io.ReadAll(io.LimitReader(f, maxSBOMSize+1))
	if err != nil {
		return sbomRecord{}, fmt.Errorf("--sbom %s: %w", path, err)
	}
	if len(data) > maxSBOMSize {
		return sbomRecord{}, fmt.Errorf("--sbom %s is larger than %d bytes", path, maxSBOMSize)
	}
	var doc struct {
		BOMFormat   string `json:"bomFormat"`
		SpecVersion string `json:"specVersion"`
	}
	if err := json.Unmarshal(data, &doc); err != nil || doc.BOMFormat != "CycloneDX" || doc.SpecVersion == "" {
		return sbomRecord{}, fmt.Errorf("--sbom %s is not a CycloneDX JSON document (bomFormat %q): %w", path, doc.BOMFormat, errors.Join(err, errNotCycloneDX))
	}
	sum := sha256.Sum256(data)
	return sbomRecord{digest: "sha256:" + hex.EncodeToString(sum[:]), format: "CycloneDX-" + doc.SpecVersion + "+json"}, nil
}

// add records the SBOM in annotations, when there is one.
func (s sbomRecord) add(annotations map[string]string) map[string]string {
	if s.digest != "" {
		annotations[annotationSBOMDigest] = s.digest
		annotations[annotationSBOMFormat] = s.format
	}
	return annotations
}
