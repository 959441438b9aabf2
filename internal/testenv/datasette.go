package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DatasetteReleasesEnv names the environment variable that points the real-release tests at
// runnable Datasette releases. Its directory holds either
//
//   - a launcher, DIR/datasette, run as `DIR/datasette VERSION ARGS...` (the layout of the
//     project's ../shared/datasette, which .ci/run uses), or
//   - one virtual environment per release, DIR/VERSION/bin/datasette, made with
//     `python3 -m venv DIR/1.0a19 && DIR/1.0a19/bin/pip install datasette==1.0a19`.
//
// Without it the tests that need real releases skip, saying so.
const DatasetteReleasesEnv = "DATASETTE_RELEASES_DIR"

// DatasetteHowTo tells a person how to run the real-release tests.
const DatasetteHowTo = DatasetteReleasesEnv + " is not set, so the tests against real Datasette releases are skipped. " +
	"To run them, point it at a directory holding a launcher DIR/datasette run as `DIR/datasette VERSION ARGS...` " +
	"(the project's ../shared/datasette is one), or one virtual environment per release: " +
	"for v in 1.0a0 1.0a2 1.0a19 1.0a37; do python3 -m venv DIR/$v && DIR/$v/bin/pip install datasette==$v; done"

// DatasetteRelease is one runnable Datasette release.
type DatasetteRelease struct {
	// Version is the release, such as "1.0a19".
	Version string
	command []string // the program and the arguments before Datasette's own
}

// DatasetteReleasesDir returns $DATASETTE_RELEASES_DIR, or "" when it is unset.
func DatasetteReleasesDir() string { return os.Getenv(DatasetteReleasesEnv) }

// FindDatasette returns release version from $DATASETTE_RELEASES_DIR. It returns an error when
// the variable is unset or the directory does not hold the release.
func FindDatasette(version string) (*DatasetteRelease, error) {
	dir := DatasetteReleasesDir()
	if dir == "" {
		return nil, errors.New(DatasetteHowTo)
	}
	launcher := filepath.Join(dir, "datasette")
	if st, err := os.Stat(launcher); err == nil && !st.IsDir() {
		if _, err := os.Stat(filepath.Join(dir, "versions", version)); err != nil {
			// The launcher knows its releases; ask it only when there is no versions/ listing.
			if _, lerr := os.Stat(filepath.Join(dir, "versions")); lerr == nil {
				return nil, fmt.Errorf("%s: no release %s under %s/versions", DatasetteReleasesEnv, version, dir)
			}
		}
		return &DatasetteRelease{Version: version, command: []string{launcher, version}}, nil
	}
	venv := filepath.Join(dir, version, "bin", "datasette")
	if _, err := os.Stat(venv); err != nil {
		return nil, fmt.Errorf("%s=%s holds neither a launcher %s nor %s: %w", DatasetteReleasesEnv, dir, launcher, venv, err)
	}
	return &DatasetteRelease{Version: version, command: []string{venv}}, nil
}

// Datasette returns release version, skipping t with [DatasetteHowTo] when
// $DATASETTE_RELEASES_DIR is unset and failing it when the directory lacks the release.
func Datasette(t testing.TB, version string) *DatasetteRelease {
	t.Helper()
	if DatasetteReleasesDir() == "" {
		t.Skip(DatasetteHowTo)
	}
	r, err := FindDatasette(version)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Cmd returns the command running the release's `datasette` with args.
func (r *DatasetteRelease) Cmd(ctx context.Context, args ...string) *exec.Cmd {
	all := append(append([]string(nil), r.command[1:]...), args...)
	cmd := exec.CommandContext(ctx, r.command[0], all...)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	return cmd
}

// Run runs the release's `datasette` with args (and extra environment variables such as
// DATASETTE_SECRET=...), within a minute, and returns its standard output, standard error
// and exit status. err is set only when it could not be run at all.
func (r *DatasetteRelease) Run(env []string, args ...string) (stdout, stderr string, status int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := r.Cmd(ctx, args...)
	cmd.Env = append(cmd.Env, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return out.String(), errOut.String(), exit.ExitCode(), nil
	}
	if err != nil {
		return out.String(), errOut.String(), -1, fmt.Errorf("run datasette %s %v: %w", r.Version, args, err)
	}
	return out.String(), errOut.String(), 0, nil
}

// CreateToken runs the release's `datasette create-token` with args, failing t when it cannot
// be run.
func (r *DatasetteRelease) CreateToken(t testing.TB, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	stdout, stderr, status, err := r.Run(nil, append([]string{"create-token"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return stdout, stderr, status
}

// DatasetteServer is a running `datasette serve --memory` of one release on 127.0.0.1.
type DatasetteServer struct {
	// Release is the release it runs.
	Release *DatasetteRelease
	// URL is its base URL, "http://127.0.0.1:PORT".
	URL string
	// Log collects what the server wrote.
	Log *SyncBuffer

	cmd      *exec.Cmd
	done     chan struct{}
	stopOnce sync.Once
}

// Serve starts the release's server with secret (passed as DATASETTE_SECRET, not on the
// command line) and extra `datasette serve` arguments on a free 127.0.0.1 port, and returns
// once it answers /-/versions.json (within startTimeout). Stop it with Stop.
func (r *DatasetteRelease) Serve(secret string, startTimeout time.Duration, extra ...string) (*DatasetteServer, error) {
	var lastErr error
	for range 3 { // a port found free may be taken before the server binds it
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s, err := r.serveOn(port, secret, startTimeout, extra)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func (r *DatasetteRelease) serveOn(port int, secret string, startTimeout time.Duration, extra []string) (*DatasetteServer, error) {
	args := append([]string{"serve", "--memory", "-h", "127.0.0.1", "-p", strconv.Itoa(port)}, extra...)
	cmd := r.Cmd(context.Background(), args...)
	cmd.Env = append(cmd.Env, "DATASETTE_SECRET="+secret)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	log := new(SyncBuffer)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start datasette %s serve: %w", r.Version, err)
	}
	s := &DatasetteServer{Release: r, URL: "http://127.0.0.1:" + strconv.Itoa(port), Log: log, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(startTimeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-s.done:
			return nil, fmt.Errorf("datasette %s serve exited before answering: %s", r.Version, log.String())
		default:
		}
		resp, err := client.Get(s.URL + "/-/versions.json")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("datasette %s serve did not answer within %s: %s", r.Version, startTimeout, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ServeT is Serve for one test: it fails t when the server does not start (within a
// minute) and stops it when t ends.
func (r *DatasetteRelease) ServeT(t testing.TB, secret string, extra ...string) *DatasetteServer {
	t.Helper()
	s, err := r.Serve(secret, time.Minute, extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Stop ends the server (its process group) and waits for it, at most 10 seconds.
func (s *DatasetteServer) Stop() {
	s.stopOnce.Do(func() {
		pgid := s.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			select {
			case <-s.done:
			case <-time.After(5 * time.Second):
			}
		}
	})
}

// Get requests path with "Authorization: Bearer token" (none when token is "") and returns
// the status and body (at most 1 MiB).
func (s *DatasetteServer) Get(path, token string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, s.URL+path, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("request %s: %w", path, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("GET %s: %w", path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, body, fmt.Errorf("read %s: %w", path, err)
	}
	return resp.StatusCode, body, nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
