package main

import (
	"errors"
	"flag"
	"time"
)

// leaderElection holds the leader election flags, named as cert-manager names them.
type leaderElection struct {
	namespace                                 string
	leaseDuration, renewDeadline, retryPeriod time.Duration
}

// bindFlags registers the flags with client-go's defaults.
func (l *leaderElection) bindFlags(fs *flag.FlagSet) {
	fs.StringVar(&l.namespace, "leader-election-namespace", "",
		"Namespace of the leader election Lease; empty means the Pod's own namespace (required outside a Pod, e.g. make run).")
	fs.DurationVar(&l.leaseDuration, "leader-election-lease-duration", 15*time.Second,
		"How long a standby waits, after the leader last renewed the Lease, before it takes over.")
	fs.DurationVar(&l.renewDeadline, "leader-election-renew-deadline", 10*time.Second,
		"How long the leader keeps trying to renew the Lease before it gives up leading (and exits).")
	fs.DurationVar(&l.retryPeriod, "leader-election-retry-period", 2*time.Second,
		"How often candidates try to acquire or renew the Lease.")
}

// validate checks the durations as client-go's leader elector will: lease > renew deadline >
// retry period (times its jitter factor 1.2) > 0.
func (l *leaderElection) validate() error {
	switch {
	case l.retryPeriod <= 0:
		return errors.New("--leader-election-retry-period must be positive")
	case l.renewDeadline <= time.Duration(1.2*float64(l.retryPeriod)):
		return errors.New("--leader-election-renew-deadline must be longer than 1.2 × --leader-election-retry-period")
	case l.leaseDuration <= l.renewDeadline:
		return errors.New("--leader-election-lease-duration must be longer than --leader-election-renew-deadline")
	}
	return nil
}
