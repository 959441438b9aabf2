package controllers

import (
	"sync"
	"time"
)

// probeSlots lets at most one probe per namespace run at a time, so that a tenant whose
// DatasetteSigners probe slow instances (each probe may take its whole 5 s timeout) holds at
// most one of the signer controller's workers, whatever it creates or edits; the other
// namespaces' signers keep the rest. ClusterDatasetteSigners (namespace "") are not limited:
// only the platform team writes them.
type probeSlots struct {
	mu   sync.Mutex
	busy map[string]bool
}

// probeSlotRetry is how soon a signer whose namespace has a probe in flight looks again.
const probeSlotRetry = time.Second

// take claims namespace's slot; false when a probe of that namespace is in flight.
func (s *probeSlots) take(namespace string) bool {
	if s == nil || namespace == "" {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[namespace] {
		return false
	}
	if s.busy == nil {
		s.busy = map[string]bool{}
	}
	s.busy[namespace] = true
	return true
}

// give frees namespace's slot; the map holds only namespaces with a probe in flight.
func (s *probeSlots) give(namespace string) {
	if s == nil || namespace == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.busy, namespace)
}
