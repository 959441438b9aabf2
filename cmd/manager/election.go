package main

import (
	"flag"
	"time"
)

// leaderElection holds the leader election flags, named as cert-manager names them.
type leaderElection struct {
	enabled                                   bool
	namespace                                 string
	leaseDuration, renewDeadline, retryPeriod time.Duration
}

// bindFlags registers the flags with client-go's defaults. client-go's leader elector checks
// them when the manager starts (lease > renew deadline > 1.2 × retry period > 0).
func (l *leaderElection) bindFlags(fs *flag.FlagSet) {
	fs.BoolVar(&l.enabled, "leader-elect", false,
		"Enable leader election for controller manager. "+
			"Enabling this will ensure there is only one active controller manager.")
	fs.StringVar(&l.namespace, "leader-election-namespace", "",
		"Namespace of the leader election Lease; empty means the Pod's own namespace (required outside a Pod, e.g. make run).")
	fs.DurationVar(&l.leaseDuration, "leader-election-lease-duration", 15*time.Second,
		"How long a standby waits, after the leader last renewed the Lease, before it takes over.")
	fs.DurationVar(&l.renewDeadline, "leader-election-renew-deadline", 10*time.Second,
		"How long the leader keeps trying to renew the Lease before it gives up leading (and exits).")
	fs.DurationVar(&l.retryPeriod, "leader-election-retry-period", 2*time.Second,
		"How often candidates try to acquire or renew the Lease.")
}
