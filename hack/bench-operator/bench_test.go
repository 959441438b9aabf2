package main

import (
	"strings"
	"testing"
	"time"
)

func TestIdleDetector(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	busy := managerSample{started: true, depth: 5, active: 1, reconciles: 10}
	quiet := func(reconciles float64) managerSample { return managerSample{started: true, reconciles: reconciles} }

	tests := []struct {
		name      string
		samples   []managerSample
		at        []int // milliseconds after t0
		wantDone  bool
		wantSince int
		wantShort bool
	}{
		{"not started", []managerSample{{}, {}, {}}, []int{0, 600, 1200}, false, 0, false},
		{"busy", []managerSample{busy, busy, busy}, []int{0, 600, 1200}, false, 0, false},
		{"quiet for the window after enough reconciles", []managerSample{busy, quiet(10), quiet(10), quiet(10)}, []int{0, 100, 400, 600}, true, 100, false},
		{"quiet, but not for the whole window", []managerSample{quiet(10), quiet(10)}, []int{0, 499}, false, 0, false},
		{"a reconcile restarts the window", []managerSample{quiet(10), quiet(11), quiet(11), quiet(11)}, []int{0, 300, 600, 800}, true, 300, false},
		{"too few reconciles: not idle within the quiet window", []managerSample{quiet(3), quiet(3)}, []int{0, 2000}, false, 0, false},
		{"too few reconciles: short once quiet for the quiet window", []managerSample{quiet(3), quiet(3)}, []int{0, 3000}, true, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &idleDetector{window: 500 * time.Millisecond, quietWindow: 3 * time.Second, minReconciles: 10}
			var since time.Time
			var short, done bool
			for i, s := range tt.samples {
				if since, short, done = d.observe(s, ms(tt.at[i])); done {
					break
				}
			}
			if done != tt.wantDone {
				t.Fatalf("done = %v, want %v", done, tt.wantDone)
			}
			if done && (!since.Equal(ms(tt.wantSince)) || short != tt.wantShort) {
				t.Errorf("since %v short %v, want %v %v", since.Sub(t0), short, time.Duration(tt.wantSince)*time.Millisecond, tt.wantShort)
			}
		})
	}
}

const apiserverMetrics = `# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="secrets",scope="resource",subresource="",verb="POST",version="v1"} 120
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="secrets",scope="resource",subresource="",verb="POST",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="datasette.io",resource="datasettetokens",scope="resource",subresource="status",verb="PUT",version="v1alpha1"} 100
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="",scope="",subresource="/metrics",verb="GET",version=""} 7
`

func TestAPIRequests(t *testing.T) {
	f, err := parseMetrics(strings.NewReader(apiserverMetrics))
	if err != nil {
		t.Fatal(err)
	}
	after := apiRequests(f)
	before := requestCounts{{Verb: "POST", Resource: "secrets", Code: "201"}: 20}
	delta := after.since(before)
	own := requestCounts{{Verb: "POST", Resource: "secrets", Code: "201"}: 50}
	got := delta.minus(own).byKind()

	if n := got[requestKey{Verb: "POST", Resource: "secrets"}]; n != 53 {
		t.Errorf("POST secrets = %v, want 53 (120 - 20 - 50 created, 3 conflicts)", n)
	}
	if n := got.total(writeVerbs...); n != 153 {
		t.Errorf("writes = %v, want 153", n)
	}
	if n := got.total(readVerbs...); n != 0 {
		t.Errorf("reads = %v, want 0: a non-resource GET /metrics is not a read of a resource", n)
	}
	if n := delta.code("409"); n != 3 {
		t.Errorf("409s = %v, want 3", n)
	}
	key := requestKey{Verb: "PUT", Group: "datasette.io", Resource: "datasettetokens", Subresource: "status"}
	if s := key.String(); s != "PUT datasettetokens.datasette.io/status" {
		t.Errorf("String() = %q", s)
	}
	renamed := requestCounts{{Verb: "PUT", Group: floorGroup, Resource: "datasettetokens"}: 2}.withGroup(floorGroup, tokenGroup)
	if renamed[requestKey{Verb: "PUT", Group: tokenGroup, Resource: "datasettetokens"}] != 2 {
		t.Errorf("withGroup: %v", renamed)
	}
}

const managerMetrics = `# TYPE controller_runtime_max_concurrent_reconciles gauge
controller_runtime_max_concurrent_reconciles{controller="datasettetoken"} 4
# TYPE workqueue_depth gauge
workqueue_depth{controller="datasettetoken",name="datasettetoken"} 4
workqueue_depth{controller="other",name="other"} 1
# TYPE controller_runtime_active_workers gauge
controller_runtime_active_workers{controller="datasettetoken"} 2
# TYPE controller_runtime_reconcile_total counter
controller_runtime_reconcile_total{controller="datasettetoken",result="success"} 1990
controller_runtime_reconcile_total{controller="datasettetoken",result="error"} 10
controller_runtime_reconcile_total{controller="other",result="success"} 5
# TYPE rest_client_requests_total counter
rest_client_requests_total{code="200",host="127.0.0.1:1",method="GET"} 2000
rest_client_requests_total{code="404",host="127.0.0.1:1",method="GET"} 1
rest_client_requests_total{code="201",host="127.0.0.1:1",method="POST"} 3
# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes 1.048576e+07
`

func TestSampleFrom(t *testing.T) {
	f, err := parseMetrics(strings.NewReader(managerMetrics))
	if err != nil {
		t.Fatal(err)
	}
	s := sampleFrom(f, "datasettetoken")
	if !s.started || s.workers != 4 || s.depth != 5 || s.active != 2 || s.reconciles != 2000 || s.heapInuse != 10<<20 {
		t.Errorf("sample = %+v", s)
	}
	if got := methods(s.client); got != "GET 2001, POST 3" {
		t.Errorf("methods = %q", got)
	}
	if got := sampleFrom(f, "missing"); got.started {
		t.Error("a controller that published no worker count has started")
	}
}

func TestQuantiles(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 50; i++ {
		d = append(d, time.Duration(51-i)*time.Millisecond)
	}
	q := quantiles(d)
	if q.p50 != 25*time.Millisecond || q.p99 != 50*time.Millisecond {
		t.Errorf("quantiles of 1..50 ms = %+v, want p50 25ms, p99 50ms", q)
	}
	if q := quantiles([]time.Duration{3 * time.Millisecond}); q.p50 != q.p99 || q.p50 != 3*time.Millisecond {
		t.Errorf("quantiles of one = %+v", q)
	}
	if q := quantiles(nil); q.p50 != 0 {
		t.Errorf("quantiles of none = %+v", q)
	}
}

func TestIsSettled(t *testing.T) {
	const m = 1 << 20
	tests := []struct {
		history []float64
		want    bool
	}{
		{[]float64{80 * m, 80 * m}, false},
		{[]float64{10 * m, 80 * m, 80.5 * m, 80 * m}, true},
		{[]float64{80 * m, 82 * m, 80 * m}, false},
		{[]float64{400 * m, 403 * m, 401 * m}, true},
	}
	for _, tt := range tests {
		if got := isSettled(tt.history, 3); got != tt.want {
			t.Errorf("isSettled(%v) = %v, want %v", tt.history, got, tt.want)
		}
	}
}

func TestProcStatusBytes(t *testing.T) {
	status := []byte("Name:\tmanager\nVmHWM:\t  102400 kB\nVmRSS:\t   83968 kB\n")
	if got := procStatusBytes(status, "VmRSS"); got != 83968*1024 {
		t.Errorf("VmRSS = %v", got)
	}
	if got := procStatusBytes(status, "VmHWM"); got != 102400*1024 {
		t.Errorf("VmHWM = %v", got)
	}
	if got := procStatusBytes(status, "VmSwap"); got != 0 {
		t.Errorf("VmSwap = %v, want 0 when absent", got)
	}
}

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"-n", "50", "-unrelated", "200", "-repairs", "5", "-floor-workers", "1, 4"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.tokens != 50 || cfg.unrelated != 200 || cfg.repairs != 5 || len(cfg.floorWorkers) != 2 || cfg.floorWorkers[1] != 4 {
		t.Errorf("config = %+v", cfg)
	}
	for _, args := range [][]string{
		{"-n", "0"}, {"-repairs", "60", "-n", "50"}, {"-floor-workers", "1,x"}, {"-idle-window", "1ms"}, {"extra"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
}

func TestPublicArgsHidesTheKubeconfigPath(t *testing.T) {
	got := publicArgs([]string{"--kubeconfig=/tmp/x/kubeconfig", "--metrics-secure=false"})
	if strings.Contains(strings.Join(got, " "), "/tmp/x") || len(got) != 2 {
		t.Errorf("publicArgs = %q", got)
	}
}

func TestFormatCount(t *testing.T) {
	for v, want := range map[float64]string{3: "3", 3.0004: "3", 2.02: "2.02", 0.0005: "0.0005", 2000: "2000", 152.4: "152"} {
		if got := formatCount(v); got != want {
			t.Errorf("formatCount(%v) = %q, want %q", v, got, want)
		}
	}
	if m := compared("reads", "", 0.002, 0.001); m.Ratio != nil {
		t.Errorf("a ratio of background counts: %v", *m.Ratio)
	}
	if m := compared("burst", "s", 3, 2); m.Ratio == nil || *m.Ratio != 1.5 {
		t.Errorf("compared(3 s, 2 s) = %+v", m)
	}
}

func TestFloorConditions(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tr := &tracker{
		tokens: map[string]tokenState{
			"a": {ready: true, readySeenAt: at(-50), versionAt: at(300)},
			"b": {ready: true, readySeenAt: at(120), versionAt: at(200)},
			"c": {ready: false, versionAt: at(-10)}, // not rewritten since the start
		},
		secrets: map[string]secretState{
			"a": {seenAt: at(400)},
			"b": {seenAt: at(100)},
			"c": {seenAt: at(500)},
		},
	}
	var seen arrivals
	if done, progress := allReady(2, &seen)(tr); !done || !seen.last().Equal(at(120)) {
		t.Errorf("allReady(2) = %v (%s), last %v; want done, last at 120ms", done, progress, seen.last().Sub(t0))
	}
	if done, progress := allReady(3, &seen)(tr); done || progress != "2 of 3 Ready" {
		t.Errorf("allReady(3) = %v (%s), want not done, 2 of 3", done, progress)
	}
	if done, progress := allRewritten(3, t0, &seen)(tr); done || progress != "2 of 3 rewritten" || !seen.last().Equal(at(400)) {
		t.Errorf("allRewritten(3) = %v (%s), last %v; want not done, 2 of 3, last at 400ms", done, progress, seen.last().Sub(t0))
	}
	tr.tokens["c"] = tokenState{versionAt: at(600)}
	if done, _ := allRewritten(3, t0, &seen)(tr); !done || !seen.last().Equal(at(600)) {
		t.Errorf("allRewritten(3) after c's status = %v, last %v; want done at 600ms", done, seen.last().Sub(t0))
	}
	if got, want := seen.spread(t0), "first 200ms, 50 % 400ms, 90 % 600ms, 99 % 600ms"; got != want {
		t.Errorf("spread = %q, want %q", got, want)
	}
}

func TestParseStat(t *testing.T) {
	line := "4242 (kube (api) server) S 77 4242 4242 0 -1 4194560 100 0 0 0 250 130 0 0 20 0 12 0 100 0 0"
	name, ppid, cpu, ok := parseStat(line)
	if !ok || name != "kube (api) server" || ppid != 77 || cpu != 3800*time.Millisecond {
		t.Errorf("parseStat = %q, %d, %s, %v; want the name with its parentheses, ppid 77, 3.8 s", name, ppid, cpu, ok)
	}
	if _, _, _, ok := parseStat("4242 (truncated) S 77"); ok {
		t.Error("parseStat accepted a line without CPU times")
	}
	used := processCPU{"etcd": 3 * time.Second, "kube-apiserver": 9 * time.Second}.since(processCPU{"etcd": time.Second})
	if got, want := used.String(), "kube-apiserver 9.0 s, etcd 2.0 s (11.0 s of CPU)"; got != want {
		t.Errorf("CPU = %q, want %q", got, want)
	}
}
