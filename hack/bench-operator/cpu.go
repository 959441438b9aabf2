package main

import (
	"cmp"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of /proc/<pid>/stat's CPU times: Linux reports them in USER_HZ, 100 per
// second on every architecture Go runs on.
const userHZ = 100

// processCPU is the CPU time (user and system) used by the harness and its children (etcd,
// kube-apiserver, the manager), by process name: where a phase's time goes on a shared machine.
type processCPU map[string]time.Duration

// sampleCPU reads the CPU time of the harness and of each of its children from /proc, the child
// whose pid is manager under managerName (0: none is), the others under their command's name; it
// is empty where there is no /proc.
func sampleCPU(manager int) processCPU {
	self := os.Getpid()
	out := processCPU{}
	for _, p := range processes() {
		switch {
		case p.pid == self:
			out[harnessName] += p.cpu
		case p.pid == manager:
			out[managerName] += p.cpu
		case p.ppid == self:
			out[p.name] += p.cpu
		}
	}
	return out
}

// process is what the harness reads of a process's /proc/<pid>/stat.
type process struct {
	pid, ppid int
	name      string
	cpu       time.Duration
}

// processes reads every process's /proc/<pid>/stat, leaving out those that end meanwhile; it is
// empty where there is no /proc.
func processes() []process {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	out := make([]process, 0, len(stats))
	for _, path := range stats {
		raw, err := os.ReadFile(path)
		if err != nil {
			continue // the process ended meanwhile
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		name, ppid, cpu, ok := parseStat(string(raw))
		if err == nil && ok {
			out = append(out, process{pid: pid, ppid: ppid, name: name, cpu: cpu})
		}
	}
	return out
}

// parseStat reads a /proc/<pid>/stat line: the command's name, the parent's pid, and utime +
// stime. The name is in parentheses and may itself hold spaces and parentheses.
func parseStat(line string) (name string, ppid int, cpu time.Duration, ok bool) {
	open, closing := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || closing < open {
		return "", 0, 0, false
	}
	// After the name: state(3) ppid(4) … utime(14) stime(15), counted from the pid as field 1.
	fields := strings.Fields(line[closing+1:])
	if len(fields) < 13 {
		return "", 0, 0, false
	}
	ppid, err1 := strconv.Atoi(fields[1])
	utime, err2 := strconv.ParseInt(fields[11], 10, 64)
	stime, err3 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return "", 0, 0, false
	}
	return line[open+1 : closing], ppid, time.Duration(utime+stime) * time.Second / userHZ, true
}

// The names sampleCPU reports the processes under.
const (
	managerName = "manager"
	harnessName = "harness"
)

// controlPlaneNames are the API server's and etcd's names, as /proc gives them.
var controlPlaneNames = []string{"kube-apiserver", "etcd"}

// seconds is the CPU time the named processes used, in seconds.
func (c processCPU) seconds(names ...string) float64 {
	var total time.Duration
	for _, name := range names {
		total += c[name]
	}
	return total.Seconds()
}

// since is the CPU time each process used after before was sampled.
func (c processCPU) since(before processCPU) processCPU { return growth(c, before) }

// String lists the processes, the busiest first, with the total: "kube-apiserver 9.1 s, etcd
// 2.0 s, … (12.3 s of CPU)".
func (c processCPU) String() string {
	if len(c) == 0 {
		return "no /proc"
	}
	names := slices.SortedFunc(maps.Keys(c), func(a, b string) int { return cmp.Or(cmp.Compare(c[b], c[a]), strings.Compare(a, b)) })
	var parts []string
	var total time.Duration
	for _, name := range names {
		parts = append(parts, fmt.Sprintf("%s %.1f s", name, c[name].Seconds()))
		total += c[name]
	}
	return fmt.Sprintf("%s (%.1f s of CPU)", strings.Join(parts, ", "), total.Seconds())
}
