package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// families is a parsed Prometheus text exposition, by metric name.
type families map[string]*dto.MetricFamily

// parseMetrics reads a Prometheus text exposition.
func parseMetrics(r io.Reader) (families, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parsing metrics: %w", err)
	}
	return fams, nil
}

// sum adds up the values of a counter or gauge over the series whose labels match every pair of
// match. found tells whether any series matched.
func (f families) sum(name string, match map[string]string) (total float64, found bool) {
	fam := f[name]
	if fam == nil {
		return 0, false
	}
	for _, m := range fam.GetMetric() {
		if !labelsMatch(m, match) {
			continue
		}
		found = true
		switch {
		case m.GetCounter() != nil:
			total += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			total += m.GetGauge().GetValue()
		case m.GetUntyped() != nil:
			total += m.GetUntyped().GetValue()
		}
	}
	return total, found
}

// byLabel adds up a counter's values by the value of one label.
func (f families) byLabel(name, label string) map[string]float64 {
	out := map[string]float64{}
	fam := f[name]
	if fam == nil {
		return out
	}
	for _, m := range fam.GetMetric() {
		out[labelValue(m, label)] += m.GetCounter().GetValue()
	}
	return out
}

func labelsMatch(m *dto.Metric, match map[string]string) bool {
	for k, v := range match {
		if labelValue(m, k) != v {
			return false
		}
	}
	return true
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// requestKey identifies API requests of one kind, as apiserver_request_total labels them.
type requestKey struct {
	Verb        string `json:"verb"`
	Group       string `json:"group,omitempty"`
	Resource    string `json:"resource"`
	Subresource string `json:"subresource,omitempty"`
	Code        string `json:"code"`
}

// requestCounts counts API requests by kind.
type requestCounts map[requestKey]float64

// apiRequests reads apiserver_request_total: requests to resources, by verb, resource and code.
// Requests to non-resource paths (such as the harness's own GET /metrics) are left out.
func apiRequests(f families) requestCounts {
	counts := requestCounts{}
	fam := f["apiserver_request_total"]
	if fam == nil {
		return counts
	}
	for _, m := range fam.GetMetric() {
		k := requestKey{
			Verb: labelValue(m, "verb"), Group: labelValue(m, "group"), Resource: labelValue(m, "resource"),
			Subresource: labelValue(m, "subresource"), Code: labelValue(m, "code"),
		}
		if k.Resource == "" {
			continue
		}
		counts[k] += m.GetCounter().GetValue()
	}
	return counts
}

// since returns the requests counted after before was read.
func (c requestCounts) since(before requestCounts) requestCounts { return growth(c, before) }

// growth is, key by key, how much the counters of after grew since before (only the keys that did).
func growth[K comparable, V ~int64 | ~float64](after, before map[K]V) map[K]V {
	out := map[K]V{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// withGroup returns the counts with requests to group `from` counted as requests to group `to`.
func (c requestCounts) withGroup(from, to string) requestCounts {
	out := requestCounts{}
	for k, v := range c {
		if k.Group == from {
			k.Group = to
		}
		out[k] += v
	}
	return out
}

// minus subtracts requests the harness made itself (counted under code 201 or 200) from the
// successful requests of the same kind.
func (c requestCounts) minus(own requestCounts) requestCounts {
	out := maps.Clone(c)
	for k, v := range own {
		out[k] = max(out[k]-v, 0)
		if out[k] == 0 {
			delete(out, k)
		}
	}
	return out
}

// byKind adds the counts up over response codes.
func (c requestCounts) byKind() requestCounts {
	out := requestCounts{}
	for k, v := range c {
		k.Code = ""
		out[k] += v
	}
	return out
}

// total adds up the requests whose verb is one of verbs, or every request when verbs is empty.
func (c requestCounts) total(verbs ...string) float64 {
	var n float64
	for k, v := range c {
		if len(verbs) == 0 || slices.Contains(verbs, k.Verb) {
			n += v
		}
	}
	return n
}

// code adds up the requests answered with an HTTP status code.
func (c requestCounts) code(code string) float64 {
	var n float64
	for k, v := range c {
		if k.Code == code {
			n += v
		}
	}
	return n
}

// Verbs as apiserver_request_total reports them.
const (
	verbCreate = "POST"
	verbUpdate = "PUT"
	verbDelete = "DELETE"
)

// Write and read verbs, as apiserver_request_total reports them.
var (
	writeVerbs = []string{verbCreate, verbUpdate, "PATCH", "APPLY", verbDelete, "DELETECOLLECTION"}
	readVerbs  = []string{"GET", "LIST"}
)

// String names the kind of request as kubectl would: "PUT datasettetokens.datasette.io/status".
func (k requestKey) String() string {
	name := k.Resource
	if k.Group != "" {
		name += "." + k.Group
	}
	if k.Subresource != "" {
		name += "/" + k.Subresource
	}
	return k.Verb + " " + name
}

// managerSample is what the harness reads from the manager's metrics at one moment.
type managerSample struct {
	started    bool    // the controller has started (its worker count is published)
	workers    float64 // its worker count: controller_runtime_max_concurrent_reconciles
	depth      float64 // items waiting in every work queue
	active     float64 // reconciles running in every controller
	reconciles float64 // reconciles the DatasetteToken controller has finished
	heapInuse  float64 // go_memstats_heap_inuse_bytes
	client     map[string]float64
}

// sampleFrom reads a managerSample from the manager's metrics.
func sampleFrom(f families, controller string) managerSample {
	s := managerSample{client: f.byLabel("rest_client_requests_total", "method")}
	s.workers, s.started = f.sum("controller_runtime_max_concurrent_reconciles", map[string]string{"controller": controller})
	s.depth, _ = f.sum("workqueue_depth", nil)
	s.active, _ = f.sum("controller_runtime_active_workers", nil)
	s.reconciles, _ = f.sum("controller_runtime_reconcile_total", map[string]string{"controller": controller})
	s.heapInuse, _ = f.sum("go_memstats_heap_inuse_bytes", nil)
	return s
}

// idleDetector decides, from successive samples, when the manager became idle: its work queues
// empty, no reconcile running and the count of reconciles unchanged for window, after at least
// minReconciles reconciles. A manager that stays quiet for quietWindow with fewer reconciles (one
// that skips some objects) is idle too, reported as short.
type idleDetector struct {
	window, quietWindow time.Duration
	minReconciles       float64

	quiet      bool
	since      time.Time
	reconciles float64
}

// observe takes one sample read at `at`. It returns done when the manager has been idle long
// enough, with the moment it became idle and whether it had done fewer than minReconciles.
func (d *idleDetector) observe(s managerSample, at time.Time) (idleSince time.Time, short, done bool) {
	quiet := s.started && s.depth == 0 && s.active == 0
	if !quiet || !d.quiet || s.reconciles != d.reconciles {
		d.quiet, d.since, d.reconciles = quiet, at, s.reconciles
		return time.Time{}, false, false
	}
	stable := at.Sub(d.since)
	switch {
	case s.reconciles >= d.minReconciles && stable >= d.window:
		return d.since, false, true
	case stable >= d.quietWindow:
		return d.since, true, true
	}
	return time.Time{}, false, false
}

// describe names the sample's state for a progress or time-out message.
func (s managerSample) describe() string {
	if !s.started {
		return "the controller has not started"
	}
	return fmt.Sprintf("queue depth %.0f, %.0f reconciles running, %.0f reconciles done", s.depth, s.active, s.reconciles)
}

// methods formats client requests by HTTP method: "GET 2000, PUT 4000".
func methods(counts map[string]float64) string {
	var parts []string
	for _, m := range slices.Sorted(maps.Keys(counts)) {
		if counts[m] > 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f", m, counts[m]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// clientDelta returns the client requests by method made between two samples.
func clientDelta(before, after map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for m, v := range after {
		if d := v - before[m]; d > 0 {
			out[m] = d
		}
	}
	return out
}
