package cli

import (
	"io"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// datasetteCreateTokenSeconds is how long Datasette's own create-token takes
// on this project's machines (measured by the project: about 0.9 s, mostly
// Python start-up and imports).
const datasetteCreateTokenSeconds = 0.9

// BenchmarkCreateTokenProcess measures a whole datasette-token create-token
// process: it builds the command, then runs it b.N times (start-up, parsing,
// minting, printing, exit) and reports the mean wall time per process and
// the speed-up over Datasette's create-token. Run it with
//
//	go test ./internal/cli -run '^$' -bench CreateTokenProcess -benchtime 200x
func BenchmarkCreateTokenProcess(b *testing.B) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		b.Fatalf("the go command is required: %v", err)
	}
	bin := filepath.Join(b.TempDir(), "datasette-token")
	if out, err := exec.Command(goTool, "build", "-o", bin, commandPackage).CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	args := []string{"create-token", "root", "--secret", "s", "-a", "view-instance",
		"-d", "db", "create-table", "-r", "db", "t", "insert-row", "-e", "60"}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Run(); err != nil {
			b.Fatalf("run %s: %v", bin, err)
		}
	}
	perProcess := time.Since(start).Seconds() / float64(b.N)
	b.ReportMetric(perProcess*1000, "ms/process")
	b.ReportMetric(datasetteCreateTokenSeconds/perProcess, "x-faster-than-datasette")
}
