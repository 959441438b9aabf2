package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// startCPUProfile starts the manager's CPU profile (its --pprof-bind-address) for
// -cpuprofile-seconds, written to -cpuprofile; the function it returns waits for it to be written.
// Without -cpuprofile it does nothing.
func (b *bench) startCPUProfile(ctx context.Context) (wait func()) {
	if b.cfg.cpuProfile == "" {
		return func() {}
	}
	var addr string
	for _, a := range b.mgrArgs {
		if v, ok := strings.CutPrefix(a, "--pprof-bind-address="); ok {
			addr = v
		}
	}
	done := make(chan error, 1)
	go func() { done <- fetchProfile(ctx, addr, b.cfg.cpuProfileSeconds, b.cfg.cpuProfile) }()
	return func() {
		if err := <-done; err != nil {
			b.notes = append(b.notes, "cpuprofile: "+err.Error())
			return
		}
		b.notes = append(b.notes, fmt.Sprintf("cpuprofile: the manager's first %d s from the key's change are in %s (go tool pprof -top %s)",
			b.cfg.cpuProfileSeconds, b.cfg.cpuProfile, b.cfg.cpuProfile))
	}
}

// fetchProfile reads a CPU profile of seconds from the pprof server at addr into path.
func fetchProfile(ctx context.Context, addr string, seconds int, path string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(seconds+30)*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reading the manager's CPU profile: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("reading the manager's CPU profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing the CPU profile: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing the CPU profile: %w", err)
	}
	return f.Close()
}
