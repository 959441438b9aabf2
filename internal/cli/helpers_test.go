package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// result is what one datasette-token invocation produced.
type result struct {
	stdout, stderr string
	code           int
}

// fixedNow is the clock tests run with unless they need another.
var fixedNow = time.Unix(1700000000, 0)

// zeroReader is the "random" source in tests.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// runMain runs datasette-token's Main in-process with args, environment env
// (nothing else is visible) and the clock at fixedNow.
func runMain(args []string, env map[string]string) result {
	var out, errOut bytes.Buffer
	code := Main(args, IOStreams{
		Out:    &out,
		ErrOut: &errOut,
		Getenv: func(k string) string { return env[k] },
		Now:    func() time.Time { return fixedNow },
		Rand:   zeroReader{},
	})
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

// runPython runs a Python 3 script that reads JSON from stdin and writes JSON
// to stdout, and decodes the output into out. Python is required: the test
// fails without it.
func runPython(t *testing.T, script string, in, out any) {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is required for this test (it checks behaviour against CPython): %v", err)
	}
	input, err := json.Marshal(in)
	if err != nil {
		t.Fatalf("encode python input: %v", err)
	}
	cmd := exec.Command(python, "-c", script)
	cmd.Stdin = bytes.NewReader(input)
	cmd.Env = append(os.Environ(), "PYTHONIOENCODING=utf-8", "COLUMNS=80")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("python3: %v\n%s", err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("decode python output: %v\n%s", err, stdout.String())
	}
}

// vectorsDir returns the Datasette test vectors folder: $DATASETTE_VECTORS,
// or shared/datasette-vectors beside the repository checkout. The vectors
// are required: the test fails without them.
func vectorsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("DATASETTE_VECTORS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "datasette-vectors")
	}
	for _, f := range []string{"mint.json", "verify.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("Datasette test vectors are required (set DATASETTE_VECTORS or provide %s): %v", dir, err)
		}
	}
	return dir
}

// readVectors decodes a vectors file's "vectors" list into v (numbers as
// json.Number).
func readVectors(t *testing.T, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(vectorsDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var file struct {
		Generator string          `json:"generator"`
		Vectors   json.RawMessage `json:"vectors"`
	}
	if err := dec.Decode(&file); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !strings.HasPrefix(file.Generator, "Datasette") {
		t.Fatalf("%s: unexpected generator %q", name, file.Generator)
	}
	dec = json.NewDecoder(bytes.NewReader(file.Vectors))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// usage is click's usage-error preamble for a datasette-token command path.
func usage(path, pieces string) string {
	return "Usage: " + path + " [OPTIONS] " + pieces + "\nTry '" + path + " --help' for help.\n\n"
}
