package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sampleInterval is how often the harness reads the manager's metrics while it waits for it.
const sampleInterval = 50 * time.Millisecond

// managerProcess is the operator's manager, run as a separate process so that its memory can be
// read from /proc.
type managerProcess struct {
	cmd        *exec.Cmd
	exited     chan struct{} // closed once the process has exited
	waitErr    error         // the process's exit status, once exited is closed
	metricsURL string
	started    time.Time
	http       *http.Client
}

// managerArgs returns the manager's command line: its kubeconfig, metrics and probes on loopback
// ports, no renewal floor, and --max-concurrent-reconciles when asked for; each flag only when
// the binary has it.
func managerArgs(bin, kubeconfig string, maxConcurrent int, pprof bool) (args []string, note string, err error) {
	metricsPort, err := freePort()
	if err != nil {
		return nil, "", err
	}
	probePort, err := freePort()
	if err != nil {
		return nil, "", err
	}
	args = []string{
		"--kubeconfig=" + kubeconfig,
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort),
		"--metrics-secure=false",
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", probePort),
	}
	help, _ := exec.Command(bin, "--help").CombinedOutput() // Go's flag package exits 0 or 2 on --help
	if pprof {
		if !bytes.Contains(help, []byte("pprof-bind-address")) {
			return nil, "", errors.New("-cpuprofile: this manager has no --pprof-bind-address flag")
		}
		pprofPort, err := freePort()
		if err != nil {
			return nil, "", err
		}
		args = append(args, fmt.Sprintf("--pprof-bind-address=127.0.0.1:%d", pprofPort))
	}
	if bytes.Contains(help, []byte("min-renewal-interval")) {
		// The rotation rounds change the key seconds apart: the renewal floor (1m by default)
		// would hold each round after the first back until it passed, timing the floor, not the
		// operator. No other measured work is paced by it (the tokens renew after hours).
		args = append(args, "--min-renewal-interval=0s")
	}
	if maxConcurrent > 0 {
		if bytes.Contains(help, []byte("max-concurrent-reconciles")) {
			args = append(args, fmt.Sprintf("--max-concurrent-reconciles=%d", maxConcurrent))
		} else {
			note = "this manager has no --max-concurrent-reconciles flag: -max-concurrent-reconciles ignored"
		}
	}
	return args, note, nil
}

// startManager starts the manager binary with args, its output appended to logPath.
func startManager(bin string, args []string, logPath string) (*managerProcess, error) {
	metricsURL, err := metricsURLFrom(args)
	if err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the manager's log: %w", err)
	}
	defer func() { _ = logFile.Close() }() // the child holds its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group keeps a terminal's ^C for the harness, which stops the manager itself;
	// Pdeathsig kills it should the harness be killed outright.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the manager %s: %w", bin, err)
	}
	m := &managerProcess{
		cmd: cmd, exited: make(chan struct{}), metricsURL: metricsURL, started: time.Now(),
		http: &http.Client{Timeout: 5 * time.Second},
	}
	go func() {
		m.waitErr = cmd.Wait()
		close(m.exited)
	}()
	return m, nil
}

// metricsURLFrom finds the metrics address in the manager's arguments.
func metricsURLFrom(args []string) (string, error) {
	for _, a := range args {
		if addr, ok := strings.CutPrefix(a, "--metrics-bind-address="); ok {
			return "http://" + addr + "/metrics", nil
		}
	}
	return "", errors.New("no --metrics-bind-address in the manager's arguments")
}

// stop asks the manager to stop (SIGTERM), and kills it when it has not within timeout.
func (m *managerProcess) stop(timeout time.Duration) error {
	if m.hasExited() {
		return nil
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
		return nil
	case <-time.After(timeout):
	}
	_ = m.cmd.Process.Kill()
	select {
	case <-m.exited:
		return fmt.Errorf("the manager did not stop within %s of SIGTERM: killed", timeout)
	case <-time.After(10 * time.Second):
		return fmt.Errorf("the manager (pid %d) did not exit after SIGKILL", m.cmd.Process.Pid)
	}
}

// pid is the manager's process ID.
func (m *managerProcess) pid() int { return m.cmd.Process.Pid }

func (m *managerProcess) hasExited() bool {
	select {
	case <-m.exited:
		return true
	default:
		return false
	}
}

// errIfExited reports a manager that exited while the harness still needs it.
func (m *managerProcess) errIfExited() error {
	if m.hasExited() {
		if m.waitErr == nil {
			return errors.New("the manager exited unexpectedly, with status 0")
		}
		return fmt.Errorf("the manager exited unexpectedly: %w", m.waitErr)
	}
	return nil
}

// memory reads the manager's resident set size and its peak (VmRSS, VmHWM), in bytes.
func (m *managerProcess) memory() (rss, peak float64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", m.cmd.Process.Pid))
	if err != nil {
		return 0, 0, fmt.Errorf("reading the manager's memory: %w", err)
	}
	return procStatusBytes(data, "VmRSS"), procStatusBytes(data, "VmHWM"), nil
}

// procStatusBytes reads a "Name:  1234 kB" line of /proc/<pid>/status, in bytes (0 if absent).
func procStatusBytes(status []byte, name string) float64 {
	scanner := bufio.NewScanner(bytes.NewReader(status))
	for scanner.Scan() {
		value, ok := strings.CutPrefix(scanner.Text(), name+":")
		if !ok {
			continue
		}
		fields := strings.Fields(value)
		if len(fields) == 0 {
			return 0
		}
		kb, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0
		}
		return kb * 1024
	}
	return 0
}

// metrics reads the manager's metrics endpoint.
func (m *managerProcess) metrics(ctx context.Context) (families, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.metricsURL, nil)
	if err != nil {
		return nil, fmt.Errorf("reading the manager's metrics: %w", err)
	}
	resp, err := m.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading the manager's metrics: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading the manager's metrics: %s", resp.Status)
	}
	return parseMetrics(resp.Body)
}

// sample reads the manager's metrics as a managerSample.
func (m *managerProcess) sample(ctx context.Context, controller string) (managerSample, error) {
	f, err := m.metrics(ctx)
	if err != nil {
		return managerSample{}, err
	}
	return sampleFrom(f, controller), nil
}

// idleResult is the outcome of waitIdle.
type idleResult struct {
	since   time.Time     // when the manager became idle
	sample  managerSample // the metrics then
	short   bool          // it went quiet with fewer reconciles than asked for
	elapsed time.Duration // from the start of the wait to since
}

// waitIdle waits until the manager is idle (see idleDetector) after at least minReconciles
// reconciles, reading its metrics every sampleInterval, for at most timeout. Errors reading the
// metrics while the manager starts are retried.
func (m *managerProcess) waitIdle(ctx context.Context, controller string, minReconciles float64,
	window, timeout time.Duration) (idleResult, error) {
	start := time.Now()
	d := &idleDetector{window: window, quietWindow: max(5*window, 3*time.Second), minReconciles: minReconciles}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(sampleInterval)
	defer tick.Stop()
	var last managerSample
	var lastErr error
	for {
		if err := m.errIfExited(); err != nil {
			return idleResult{}, err
		}
		at := time.Now()
		s, err := m.sample(ctx, controller)
		if err == nil {
			last = s
			if since, short, done := d.observe(s, at); done {
				return idleResult{since: since, sample: s, short: short, elapsed: since.Sub(start)}, nil
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return idleResult{}, fmt.Errorf("waiting for the manager to be idle: %w (%s)", context.Cause(ctx), last.describe())
		case <-deadline.C:
			err := fmt.Errorf("the manager was not idle within %s: %s", timeout, last.describe())
			return idleResult{}, errors.Join(err, lastErr)
		case <-tick.C:
		}
	}
}

// freePort returns a loopback TCP port that is free now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// countInFile counts the lines of path, from byte offset on, that contain substr, and returns the
// file's size: the offset to count from next time.
func countInFile(path string, offset int64, substr string) (count int, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, offset, fmt.Errorf("reading the manager's log: %w", err)
	}
	defer func() { _ = f.Close() }()
	info, err := f.Stat()
	if err != nil {
		return 0, offset, fmt.Errorf("reading the manager's log: %w", err)
	}
	size = info.Size()
	scanner := bufio.NewScanner(io.NewSectionReader(f, offset, size-offset))
	scanner.Buffer(make([]byte, 64*1024), 1024*1024)
	for scanner.Scan() {
		if strings.Contains(scanner.Text(), substr) {
			count++
		}
	}
	if err := scanner.Err(); err != nil {
		return count, size, fmt.Errorf("reading the manager's log: %w", err)
	}
	return count, size, nil
}
