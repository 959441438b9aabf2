// Command bench-operator measures the DatasetteToken operator at scale on a local control plane
// (kube-apiserver and etcd, as envtest runs them) beside the raw API floor measured in the same run.
//
// It starts the control plane with the CRDs installed, runs the floor (the same API writes made
// directly by a plain client, best of several worker counts, timed as the operator is: until the
// harness's watch on the namespace has seen the last write), then runs the manager binary as a
// separate process and measures: N tokens created to all Ready, a signing-key rotation to all
// re-minted, a restart to an idle work queue, the manager's resident memory with and without many
// unrelated Secrets, the repair latency of a deleted output Secret, and the API requests per token
// by verb and resource (from the API server's apiserver_request_total).
//
// It prints one table (measure, operator, floor, ratio) and a table of requests by verb and
// resource, or JSON with -json. It is a benchmark, not a test: it exits non-zero only when the
// harness itself fails (the control plane does not start, the manager crashes, a phase times out),
// never because a number is bad. It stops every process it started on exit, SIGINT and SIGTERM.
//
// `make bench-operator BENCH_ARGS="-n 2000"` builds bin/manager and runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config holds the command-line settings.
type config struct {
	tokens               int
	unrelated            int
	unrelatedNamespaces  int
	unrelatedSize        int
	repairs              int
	workers              int
	floorWorkers         []int
	floorRounds          int
	rotationRounds       int
	cpuProfile           string
	cpuProfileSeconds    int
	maxConcurrent        int
	managerBin           string
	crds                 string
	controller           string
	idleWindow           time.Duration
	phaseTimeout         time.Duration
	timeout              time.Duration
	jsonOutput           bool
	attachControlPlane   bool
	splitCores           bool
	keepManagerLogOnExit bool
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-operator:", err)
		os.Exit(2)
	}
	os.Exit(mainWithExitCode(cfg))
}

// mainWithExitCode runs the benchmark and prints its report; it returns the process exit code, so
// that every deferred clean-up has run before the process exits.
func mainWithExitCode(cfg config) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()

	started := time.Now()
	res, err := run(ctx, cfg)
	if err != nil {
		if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
			err = fmt.Errorf("%w (the whole run is bounded by -timeout %s)", err, cfg.timeout)
		}
		fmt.Fprintln(os.Stderr, "bench-operator: FAILED:", err)
		return 1
	}
	res.Meta.WallSeconds = time.Since(started).Seconds()
	if cfg.jsonOutput {
		err = res.writeJSON(os.Stdout)
	} else {
		err = res.writeTables(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-operator: writing the report:", err)
		return 1
	}
	return 0
}

// parseFlags reads the command line into a config and checks it.
func parseFlags(args []string) (config, error) {
	var cfg config
	var floorWorkers string
	fs := flag.NewFlagSet("bench-operator", flag.ContinueOnError)
	fs.IntVar(&cfg.tokens, "n", 2000, "number of DatasetteTokens")
	fs.IntVar(&cfg.unrelated, "unrelated", 20000, "number of unrelated Secrets created for the memory measure")
	fs.IntVar(&cfg.unrelatedNamespaces, "unrelated-namespaces", 20, "number of namespaces the unrelated Secrets are spread over")
	fs.IntVar(&cfg.unrelatedSize, "unrelated-size", 10*1024, "size in bytes of each unrelated Secret's data")
	fs.IntVar(&cfg.repairs, "repairs", 50, "number of output Secrets deleted, one at a time, for the repair latency")
	fs.IntVar(&cfg.workers, "workers", 32, "concurrent clients the harness creates objects with")
	fs.StringVar(&floorWorkers, "floor-workers", "1,8,32", "worker counts the raw floor is measured with (the best is kept)")
	fs.IntVar(&cfg.floorRounds, "floor-rounds", 2,
		"how many times the floor is measured at each worker count, the best kept (on a shared machine one round can be 2× slower)")
	fs.IntVar(&cfg.rotationRounds, "rotation-rounds", 2,
		"how many times the operator's rotation is measured, the fastest kept as the floor's is")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write the manager's CPU profile of the rotation to this file (the manager must have --pprof-bind-address)")
	fs.IntVar(&cfg.cpuProfileSeconds, "cpuprofile-seconds", 15, "how long the rotation's CPU profile runs, from the key's change")
	fs.IntVar(&cfg.maxConcurrent, "max-concurrent-reconciles", 0,
		"pass --max-concurrent-reconciles=K to the manager when its --help lists the flag (0: the manager's default)")
	fs.StringVar(&cfg.managerBin, "manager", "bin/manager", "the manager binary (go build -o bin/manager ./cmd/manager)")
	fs.StringVar(&cfg.crds, "crds", "config/crd/bases", "the folder of CRDs to install")
	fs.StringVar(&cfg.controller, "controller", "datasettetoken", "the name of the DatasetteToken controller in the manager's metrics")
	fs.DurationVar(&cfg.idleWindow, "idle-window", 500*time.Millisecond,
		"how long the work queue must stay empty, with no reconcile, to call the manager idle")
	fs.DurationVar(&cfg.phaseTimeout, "phase-timeout", 10*time.Minute, "the longest any one wait may take")
	fs.DurationVar(&cfg.timeout, "timeout", 45*time.Minute, "the longest the whole run may take")
	fs.BoolVar(&cfg.jsonOutput, "json", false, "print the results as JSON instead of tables")
	fs.BoolVar(&cfg.splitCores, "split-cores", false,
		"give kube-apiserver and etcd all CPUs but the last, the harness and the manager the last (Linux): the API server's pace without the clients' CPU")
	fs.BoolVar(&cfg.attachControlPlane, "attach-control-plane", false, "show the kube-apiserver's and etcd's output")
	fs.BoolVar(&cfg.keepManagerLogOnExit, "keep-manager-log", false, "keep the manager's log after a successful run (it is always kept on failure)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var err error
	if cfg.floorWorkers, err = parseWorkerCounts(floorWorkers); err != nil {
		return cfg, err
	}
	return cfg, cfg.check()
}

// check rejects settings the harness cannot run with.
func (c config) check() error {
	switch {
	case c.tokens < 1 || c.tokens > 100000:
		return fmt.Errorf("-n %d: want 1 to 100000", c.tokens)
	case c.unrelated < 0 || c.unrelated > 200000:
		return fmt.Errorf("-unrelated %d: want 0 to 200000", c.unrelated)
	case c.unrelatedNamespaces < 1 || c.unrelatedNamespaces > 1000:
		return fmt.Errorf("-unrelated-namespaces %d: want 1 to 1000", c.unrelatedNamespaces)
	case c.unrelatedSize < 0 || c.unrelatedSize > 512*1024:
		return fmt.Errorf("-unrelated-size %d: want 0 to 524288 bytes", c.unrelatedSize)
	case c.repairs < 1 || c.repairs > c.tokens:
		return fmt.Errorf("-repairs %d: want 1 to -n (%d)", c.repairs, c.tokens)
	case c.floorRounds < 1 || c.floorRounds > 5:
		return fmt.Errorf("-floor-rounds %d: want 1 to 5", c.floorRounds)
	case c.rotationRounds < 1 || c.rotationRounds > 5:
		return fmt.Errorf("-rotation-rounds %d: want 1 to 5", c.rotationRounds)
	case c.cpuProfileSeconds < 1 || c.cpuProfileSeconds > 600:
		return fmt.Errorf("-cpuprofile-seconds %d: want 1 to 600", c.cpuProfileSeconds)
	case c.workers < 1 || c.workers > 256:
		return fmt.Errorf("-workers %d: want 1 to 256", c.workers)
	case c.maxConcurrent < 0:
		return fmt.Errorf("-max-concurrent-reconciles %d: want 0 or more", c.maxConcurrent)
	case c.idleWindow < 50*time.Millisecond:
		return fmt.Errorf("-idle-window %s: want at least 50ms", c.idleWindow)
	case c.phaseTimeout <= 0 || c.timeout <= 0:
		return errors.New("-phase-timeout and -timeout must be positive")
	}
	return nil
}

// parseWorkerCounts reads a comma-separated list of worker counts, such as "1,8,32".
func parseWorkerCounts(s string) ([]int, error) {
	var counts []int
	for field := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || n < 1 || n > 256 {
			return nil, fmt.Errorf("-floor-workers %q: want a comma-separated list of counts from 1 to 256", s)
		}
		counts = append(counts, n)
	}
	return counts, nil
}
