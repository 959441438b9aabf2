package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// results is the report: what was measured, beside the floor.
type results struct {
	Meta     meta         `json:"meta"`
	Measures []measure    `json:"measures"`
	Requests []requestRow `json:"requests"`
	Notes    []string     `json:"notes,omitempty"`
}

// meta describes the run.
type meta struct {
	Tokens        int      `json:"tokens"`
	Unrelated     int      `json:"unrelatedSecrets"`
	UnrelatedSize int      `json:"unrelatedSecretBytes"`
	Repairs       int      `json:"repairs"`
	Workers       int      `json:"workers"`
	FloorWorkers  []int    `json:"floorWorkers"`
	BestBurst     int      `json:"floorBurstBestWorkers"`
	BestRotation  int      `json:"floorRotationBestWorkers"`
	ManagerArgs   []string `json:"managerArgs"`
	ManagerWorker float64  `json:"managerWorkers"`
	CPUs          int      `json:"cpus"`
	LoadAvgStart  string   `json:"loadAverageAtStart"`
	LoadAvgEnd    string   `json:"loadAverageAtEnd"`
	WallSeconds   float64  `json:"wallSeconds"`
}

// measure is one row of the main table. Floor is nil where there is no floor to compare with.
type measure struct {
	Name     string   `json:"name"`
	Unit     string   `json:"unit"`
	Operator float64  `json:"operator"`
	Floor    *float64 `json:"floor,omitempty"`
	Ratio    *float64 `json:"ratio,omitempty"`
	Note     string   `json:"note,omitempty"`
}

// requestRow is one row of the table of API requests by verb and resource.
type requestRow struct {
	Request          string  `json:"request"`
	BurstOperator    float64 `json:"burstOperatorPerToken"`
	BurstFloor       float64 `json:"burstFloorPerToken"`
	RotationOperator float64 `json:"rotationOperatorPerToken"`
	RotationFloor    float64 `json:"rotationFloorPerToken"`
	RestartOperator  float64 `json:"restartOperator"`
	RestartFloor     float64 `json:"restartFloor"`
}

// loadAvgAtStart is read when the process starts, before the control plane adds to it.
var loadAvgAtStart = loadAverage()

// results assembles the report.
func (b *bench) results() *results {
	return &results{
		Meta: meta{
			Tokens: b.cfg.tokens, Unrelated: b.cfg.unrelated, UnrelatedSize: b.cfg.unrelatedSize, Repairs: b.cfg.repairs,
			Workers: b.cfg.workers, FloorWorkers: b.cfg.floorWorkers,
			BestBurst: b.floor.burst.workers, BestRotation: b.floor.rotation.workers,
			ManagerArgs: publicArgs(b.mgrArgs), ManagerWorker: b.operator.workers, CPUs: runtime.NumCPU(),
			LoadAvgStart: loadAvgAtStart, LoadAvgEnd: loadAverage(),
		},
		Measures: b.measures(),
		Requests: b.requestRows(),
		Notes:    b.notes,
	}
}

// measures builds the main table's rows.
func (b *bench) measures() []measure {
	n := float64(b.cfg.tokens)
	o, f := &b.operator, &b.floor
	burstOp, burstFloor := o.burstRequests.byKind(), f.burst.requests.byKind().minus(harnessCreates(b.cfg.tokens, ""))
	repairs, creates, returns := quantiles(o.repairs), quantiles(f.createLatencies), quantiles(f.createReturns)
	rows := slices.Concat([]measure{
		compared(fmt.Sprintf("burst: create → all %d Ready", b.cfg.tokens), "s", o.burstReady.Seconds(), f.burst.elapsed.Seconds()),
		compared("burst: create → manager idle", "s", o.burstIdle.Seconds(), f.burst.elapsed.Seconds()),
		alone("burst: create → all first-issue events sent", "s", o.burstEvents.Seconds()),
		alone("burst: reconciles per token", "", o.burstReconciles),
		compared("burst: writes per token", "", burstOp.total(writeVerbs...)/n, burstFloor.total(writeVerbs...)/n),
		compared("burst: GET/LIST per token", "", burstOp.total(readVerbs...)/n, burstFloor.total(readVerbs...)/n),
		compared("rotation → all re-minted", "s", o.rotation.Seconds(), f.rotation.elapsed.Seconds()),
		compared("rotation → manager idle", "s", o.rotationIdle.Seconds(), f.rotation.elapsed.Seconds()),
		compared("rotation: GET/LIST per token", "", o.rotationRequests.total(readVerbs...)/n, f.rotation.requests.total(readVerbs...)/n),
		compared("burst: CPU of kube-apiserver and etcd", "s", o.burstCPU.seconds(controlPlaneNames...), f.burst.cpu.seconds(controlPlaneNames...)),
		alone("burst: CPU of the manager", "s", o.burstCPU.seconds(managerName)),
		compared("rotation: CPU of kube-apiserver and etcd", "s", o.rotationCPU.seconds(controlPlaneNames...), f.rotation.cpu.seconds(controlPlaneNames...)),
		alone("rotation: CPU of the manager", "s", o.rotationCPU.seconds(managerName)),
		withNote(compared("restart → idle (floor: cache sync)", "s", o.restart.Seconds(), f.cacheSync.Seconds()),
			fmt.Sprintf("%.0f reconciles", o.restartReconciles)),
		compared("restart: API writes", "", o.restartRequests.total(writeVerbs...), f.cacheSyncRequests.total(writeVerbs...)),
		compared("restart: API GET/LIST", "", o.restartRequests.total(readVerbs...), f.cacheSyncRequests.total(readVerbs...)),
		alone(fmt.Sprintf("RSS idle, %d tokens", b.cfg.tokens), "MiB", mib(o.rss.rss)),
		compared(fmt.Sprintf("RSS + %d unrelated Secrets (floor: without)", b.cfg.unrelated), "MiB", mib(o.rssUnrelated.rss), mib(o.rss.rss)),
		compared("Go heap in use + unrelated (floor: without)", "MiB", mib(o.rssUnrelated.heapInuse), mib(o.rss.heapInuse)),
		alone("RSS per unrelated Secret", "KiB", perUnrelated(o.rssUnrelated.rss-o.rss.rss, b.cfg.unrelated)/1024),
		withNote(compared("repair p50 (floor: one Secret create)", "ms", ms(repairs.p50), ms(creates.p50)),
			fmt.Sprintf("floor's create returned after %.1f ms", ms(returns.p50))),
		withNote(compared("repair p99 (floor: one Secret create)", "ms", ms(repairs.p99), ms(creates.p99)),
			fmt.Sprintf("floor's create returned after %.1f ms", ms(returns.p99))),
		compared("repair: 409 Conflict responses", "", o.repairRequests.code("409"), 0),
		withNote(alone(`manager log: "Reconciler error" lines`, "", float64(sumValues(o.errorsLogged))), phaseCounts(o.errorsLogged)),
	}, b.floorRows())
	if !o.rss.settled || !o.rssUnrelated.settled {
		b.notes = append(b.notes, "memory: the resident size had not settled within a minute; the last reading is shown")
	}
	if len(o.rotations) > 1 {
		rounds := make([]string, len(o.rotations))
		for i, d := range o.rotations {
			rounds[i] = fmt.Sprintf("%.2f s", d.Seconds())
		}
		b.notes = append(b.notes, "rotation: rounds "+strings.Join(rounds, ", ")+"; the fastest is kept, as the floor's fastest run is")
	}
	b.notes = append(b.notes,
		fmt.Sprintf("CPU by process: burst %s, its floor %s; rotation %s, its floor %s (the harness creates the burst's tokens, and writes the floor)",
			o.burstCPU, f.burst.cpu, o.rotationCPU, f.rotation.cpu),
		"burst: the manager's own client requests: "+methods(o.burstClient),
		"restart: the manager's own client requests (rest_client_requests_total): "+methods(o.restartClient),
	)
	return rows
}

// compared is a row with a floor. The ratio is left out when the floor is zero, or a count of
// requests below 0.01 per token (the API server's own background requests).
func compared(name, unit string, operator, floor float64) measure {
	m := measure{Name: name, Unit: unit, Operator: operator, Floor: &floor}
	if floor > 0 && (unit != "" || floor >= 0.01) {
		r := operator / floor
		m.Ratio = &r
	}
	return m
}

// alone is a row with no floor.
func alone(name, unit string, operator float64) measure {
	return measure{Name: name, Unit: unit, Operator: operator}
}

// withNote returns m with a note printed after its row.
func withNote(m measure, note string) measure {
	m.Note = note
	return m
}

// requestRows builds the table of API requests by verb and resource.
func (b *bench) requestRows() []requestRow {
	n := float64(b.cfg.tokens)
	columns := []requestCounts{
		b.operator.burstRequests.byKind(), b.floor.burst.requests.byKind().minus(harnessCreates(b.cfg.tokens, "")),
		b.operator.rotationRequests.byKind(), b.floor.rotation.requests.byKind(),
		b.operator.restartRequests.byKind(), b.floor.cacheSyncRequests.byKind(),
	}
	kinds := map[requestKey]bool{}
	for _, c := range columns {
		for k := range c {
			if k.Verb != "WATCH" { // long-running: counted when it ends, which says little here
				kinds[k] = true
			}
		}
	}
	keys := slices.Collect(maps.Keys(kinds))
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	rows := make([]requestRow, 0, len(keys))
	for _, k := range keys {
		rows = append(rows, requestRow{
			Request:       k.String(),
			BurstOperator: columns[0][k] / n, BurstFloor: columns[1][k] / n,
			RotationOperator: columns[2][k] / n, RotationFloor: columns[3][k] / n,
			RestartOperator: columns[4][k], RestartFloor: columns[5][k],
		})
	}
	return rows
}

// writeTables prints the main table, the table of requests and the notes.
func (r *results) writeTables(out io.Writer) error {
	p := &printer{w: out}
	m := r.Meta
	p.printf("\nDatasetteToken operator at scale: N=%d tokens, %d unrelated Secrets of %d bytes, %d repairs\n",
		m.Tokens, m.Unrelated, m.UnrelatedSize, m.Repairs)
	p.printf("floor: the same writes by a plain client, best of %v workers (burst: %d, rotation: %d); harness workers: %d\n",
		m.FloorWorkers, m.BestBurst, m.BestRotation, m.Workers)
	p.printf("manager: %s (%.0f workers)\n", strings.Join(m.ManagerArgs, " "), m.ManagerWorker)
	p.printf("machine: %d CPUs, load average %s at start, %s at end; wall time %.0f s\n\n",
		m.CPUs, m.LoadAvgStart, m.LoadAvgEnd, m.WallSeconds)

	tw := &printer{w: tabwriter.NewWriter(p, 0, 0, 2, ' ', 0)}
	tw.printf("measure\toperator\tfloor\tratio\t\n")
	for _, row := range r.Measures {
		floor, ratio := "–", "–"
		if row.Floor != nil {
			floor = formatValue(*row.Floor, row.Unit)
		}
		if row.Ratio != nil {
			ratio = fmt.Sprintf("%.2f×", *row.Ratio)
		}
		tw.printf("%s\t%s\t%s\t%s\t %s\n", row.Name, formatValue(row.Operator, row.Unit), floor, ratio, row.Note)
	}
	tw.flush()

	p.printf("\nAPI requests by verb and resource (apiserver_request_total; the harness's own requests left out;\n" +
		"WATCH left out: informers list by streaming a WATCH, which the API server counts only when it ends)\n")
	tw = &printer{w: tabwriter.NewWriter(p, 0, 0, 2, ' ', tabwriter.AlignRight)}
	tw.printf("request\tburst/token\tfloor\trotation/token\tfloor\trestart\tfloor (cache sync)\t\n")
	for _, row := range r.Requests {
		tw.printf("%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t\n", row.Request, formatCount(row.BurstOperator), formatCount(row.BurstFloor),
			formatCount(row.RotationOperator), formatCount(row.RotationFloor), row.RestartOperator, row.RestartFloor)
	}
	tw.flush()
	for _, note := range r.Notes {
		p.printf("note: %s\n", note)
	}
	return errors.Join(tw.err, p.err)
}

// printer writes formatted text and keeps the first error, so that a report is written without
// an error check on every line.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

// Write lets a printer sit under a tabwriter.
func (p *printer) Write(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	var n int
	n, p.err = p.w.Write(b)
	return n, p.err
}

// flush flushes a printer over a tabwriter.
func (p *printer) flush() {
	if tw, ok := p.w.(*tabwriter.Writer); ok && p.err == nil {
		p.err = tw.Flush()
	}
}

// writeJSON prints the results as indented JSON.
func (r *results) writeJSON(out io.Writer) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("encoding JSON: %w", err)
	}
	return nil
}

// formatValue prints a value with its unit.
func formatValue(v float64, unit string) string {
	switch unit {
	case "s":
		return fmt.Sprintf("%.2f s", v)
	case "ms":
		return fmt.Sprintf("%.1f ms", v)
	case "MiB", "KiB":
		return fmt.Sprintf("%.1f %s", v, unit)
	}
	return formatCount(v)
}

// formatCount prints a count, or a count per token, with three significant digits at most:
// "3", "2.02", "0.0005".
func formatCount(v float64) string {
	if v == math.Trunc(v) || v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// latencyQuantiles are the median and the 99th percentile of some latencies.
type latencyQuantiles struct{ p50, p99 time.Duration }

// quantiles returns the nearest-rank median and 99th percentile.
func quantiles(d []time.Duration) latencyQuantiles {
	if len(d) == 0 {
		return latencyQuantiles{}
	}
	sorted := slices.Sorted(slices.Values(d))
	return latencyQuantiles{p50: nearestRank(sorted, 0.50), p99: nearestRank(sorted, 0.99)}
}

// nearestRank is the p-quantile (0 ≤ p ≤ 1) of sorted, which is not empty, by the nearest-rank
// method.
func nearestRank(sorted []time.Duration, p float64) time.Duration {
	return sorted[max(int(math.Ceil(p*float64(len(sorted))))-1, 0)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(bytes float64) float64 { return bytes / (1 << 20) }

// perUnrelated divides a memory growth by the number of unrelated Secrets.
func perUnrelated(bytes float64, count int) float64 {
	if count == 0 {
		return 0
	}
	return bytes / float64(count)
}

func sumValues(m map[string]int) int {
	total := 0
	for _, v := range m {
		total += v
	}
	return total
}

// phaseCounts formats counts by phase, in the order the phases ran.
func phaseCounts(m map[string]int) string {
	parts := make([]string, 0, 4)
	for _, phase := range []string{"burst", "rotation", "restart", "repair"} {
		parts = append(parts, fmt.Sprintf("%s %d", phase, m[phase]))
	}
	return strings.Join(parts, ", ")
}

// publicArgs returns the manager's arguments without the kubeconfig's path (a temporary file).
func publicArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for _, a := range args {
		if strings.HasPrefix(a, "--kubeconfig=") {
			a = "--kubeconfig=…"
		}
		out = append(out, a)
	}
	return out
}

// loadAverage reads the 1, 5 and 15 minute load averages.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	fields := strings.Fields(string(data))
	if len(fields) < 3 {
		return "unknown"
	}
	return strings.Join(fields[:3], " ")
}

// floorRows compares the operator with the floor at each worker count and round, not only the best.
func (b *bench) floorRows() []measure {
	label := func(kind string, r floorRun) string {
		round := ""
		if b.cfg.floorRounds > 1 {
			round = fmt.Sprintf(", round %d", r.round)
		}
		return fmt.Sprintf("%s vs floor at %d workers%s", kind, r.workers, round)
	}
	rows := make([]measure, 0, len(b.floor.bursts)+len(b.floor.rotations))
	row := func(kind string, operator time.Duration, r floorRun) measure {
		m := compared(label(kind, r), "s", operator.Seconds(), r.elapsed.Seconds())
		m.Note = fmt.Sprintf("floor's client returned after %.2f s", r.returned.Seconds())
		return m
	}
	for _, r := range b.floor.bursts {
		rows = append(rows, row("burst", b.operator.burstReady, r))
	}
	for _, r := range b.floor.rotations {
		rows = append(rows, row("rotation", b.operator.rotation, r))
	}
	return rows
}
