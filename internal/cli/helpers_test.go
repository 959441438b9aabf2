package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/datasette-token-operator/datasette-token-operator/pkg/dstoken"
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
	return runMainIn(args, env, nil)
}

// runMainIn is runMain with standard input reading from in (nil: none).
func runMainIn(args []string, env map[string]string, in io.Reader) result {
	var out, errOut bytes.Buffer
	code := Main(args, IOStreams{
		In:     in,
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

// usage is click's usage-error preamble for a datasette-token command path.
func usage(path, pieces string) string {
	return "Usage: " + path + " [OPTIONS] " + pieces + "\nTry '" + path + " --help' for help.\n\n"
}

// pyFloatRepr returns json.dumps(f): Python's float repr, or NaN, Infinity
// or -Infinity.
func pyFloatRepr(f float64) string {
	// FormatFloat writes a float literal json.loads reads exactly, or NaN, +Inf or -Inf.
	literal := strings.Replace(strings.TrimPrefix(strconv.FormatFloat(f, 'e', -1, 64), "+"), "Inf", "Infinity", 1)
	repr, err := dstoken.IndentPayload([]byte(literal), 0)
	if err != nil {
		panic(err) // every float64 has a literal
	}
	return repr
}
