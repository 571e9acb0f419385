package main

import "fmt"

// targets are the ways to the cluster the comparison measures, in the
// table's order; the benchmarks report figures as "TARGET-UNIT".
var targets = []string{"direct", "nginx", "kubegate"}

// figure is one row of the comparison table: a metric of one benchmark,
// measured for each target.
type figure struct {
	// name labels the row; short labels the chart's bar group ("" keeps
	// the figure out of the chart).
	name, short string
	// benchmark is the benchmark's name without the -GOMAXPROCS suffix;
	// unit the metric's unit after the "TARGET-" prefix.
	benchmark, unit string
	// lowerIsBetter is set for latencies, CPU and memory.
	lowerIsBetter bool
	// format shows a value in the table.
	format func(float64) string
	// target is the target, as written there; "" for a figure that
	// is only recorded.
	target string
	// check decides the target from the row's values, and says by how much;
	// nil for no target.
	check func(v map[string]float64) (met bool, detail string, ok bool)
	// count, if set, is a metric of the benchmark (without a target
	// prefix) that the row's name mentions, such as how many sessions
	// were open.
	count string
}

func perSecond(v float64) string { return fmt.Sprintf("%.0f/s", v) }
func msFromUs(v float64) string  { return fmt.Sprintf("%.2f ms", v/1000) }
func mibps(v float64) string     { return fmt.Sprintf("%.0f MiB/s", v) }
func cpuS(ms float64) string     { return fmt.Sprintf("%.3f s", ms/1000) }
func kib(v float64) string       { return fmt.Sprintf("%.1f KiB", v) }

// ratioAtLeast checks kubegate ≥ min × base.
func ratioAtLeast(base string, min float64) func(map[string]float64) (bool, string, bool) {
	return func(v map[string]float64) (bool, string, bool) {
		k, okK := v["kubegate"]
		b, okB := v[base]
		if !okK || !okB || b == 0 {
			return false, "", false
		}
		return k/b >= min, fmt.Sprintf("%.2f× %s", k/b, base), true
	}
}

// addedAtMost checks kubegate ≤ direct + limit (all in µs).
func addedAtMost(limitUs float64) func(map[string]float64) (bool, string, bool) {
	return func(v map[string]float64) (bool, string, bool) {
		k, okK := v["kubegate"]
		d, okD := v["direct"]
		if !okK || !okD {
			return false, "", false
		}
		return k-d <= limitUs, fmt.Sprintf("%+.2f ms", (k-d)/1000), true
	}
}

// both requires two checks.
func both(a, b func(map[string]float64) (bool, string, bool)) func(map[string]float64) (bool, string, bool) {
	return func(v map[string]float64) (bool, string, bool) {
		m1, d1, ok1 := a(v)
		m2, d2, ok2 := b(v)
		switch {
		case ok1 && ok2:
			return m1 && m2, d1 + ", " + d2, true
		case ok1:
			return m1, d1, true
		}
		return false, "", false
	}
}

// figures are the comparison's rows, in the order.
var figures = []figure{
	{name: "API GET throughput (50 clients)", short: "GET req/s", benchmark: "BenchmarkGetThroughput", unit: "req/s", format: perSecond,
		target: "≥ 0.9× direct and ≥ 1.0× nginx", check: both(ratioAtLeast("direct", 0.9), ratioAtLeast("nginx", 1.0))},
	{name: "API GET latency p50 (sequential)", short: "GET p50", benchmark: "BenchmarkGetLatency", unit: "p50-µs", lowerIsBetter: true, format: msFromUs,
		target: "≤ direct + 0.3 ms", check: addedAtMost(300)},
	{name: "API GET latency p99 (sequential)", short: "GET p99", benchmark: "BenchmarkGetLatency", unit: "p99-µs", lowerIsBetter: true, format: msFromUs,
		target: "≤ direct + 1 ms", check: addedAtMost(1000)},
	{name: "exec setup rate, WebSocket (concurrency 8)", short: "exec setup WS", benchmark: "BenchmarkExecSetupRate/websocket", unit: "sessions/s", format: perSecond,
		target: "≥ 0.8× direct", check: ratioAtLeast("direct", 0.8)},
	{name: "exec setup rate, SPDY (concurrency 8)", short: "exec setup SPDY", benchmark: "BenchmarkExecSetupRate/spdy", unit: "sessions/s", format: perSecond,
		target: "≥ 0.8× direct", check: ratioAtLeast("direct", 0.8)},
	{name: "exec stream throughput (recorded)", short: "exec stream", benchmark: "BenchmarkExecThroughput", unit: "MiB/s", format: mibps,
		target: "≥ 0.9× direct", check: ratioAtLeast("direct", 0.9)},
	{name: "port-forward throughput, WebSocket", short: "pf WS", benchmark: "BenchmarkPortForwardThroughput/websocket", unit: "MiB/s", format: mibps,
		target: "≥ 0.9× direct", check: ratioAtLeast("direct", 0.9)},
	{name: "port-forward throughput, SPDY", short: "pf SPDY", benchmark: "BenchmarkPortForwardThroughput/spdy", unit: "MiB/s", format: mibps,
		target: "≥ 0.9× direct", check: ratioAtLeast("direct", 0.9)},
	{name: "idle attach sessions: proxy RSS per session", benchmark: "BenchmarkIdleStreams", unit: "KiB/session", lowerIsBetter: true, format: kib,
		count: "sessions", target: "kubegate ≤ 64 KiB per session", check: func(v map[string]float64) (bool, string, bool) {
			k, ok := v["kubegate"]
			return k <= 64, kib(k), ok
		}},
	{name: "proxy CPU per 1,000 GETs (user+sys)", benchmark: "BenchmarkGetThroughput", unit: "cpu-ms/1k", lowerIsBetter: true, format: cpuS},
	{name: "apiserver CPU per 1,000 GETs (user+sys)", benchmark: "BenchmarkGetThroughput", unit: "apiserver-cpu-ms/1k", lowerIsBetter: true, format: cpuS},
}

// verdict is a row's target outcome.
type verdict int

const (
	noTarget verdict = iota // only recorded
	met
	missed
	unknown // a value the target needs was not measured
)

func (v verdict) String() string {
	return [...]string{"–", "met", "missed", "not measured"}[v]
}

// row is a figure with its values.
type row struct {
	figure
	values  map[string]float64 // by target; absent when not measured
	verdict verdict
	detail  string // what decided the verdict ("0.46× direct")
}

// ratio is values[a]/values[b], if both were measured.
func (r row) ratio(a, b string) (float64, bool) {
	x, okA := r.values[a]
	y, okB := r.values[b]
	if !okA || !okB || y == 0 {
		return 0, false
	}
	return x / y, true
}

// speedup is how a target compares with direct, higher being better
// whichever way the figure improves: target/direct, or direct/target for
// latencies.
func (r row) speedup(t string) (float64, bool) {
	if r.lowerIsBetter {
		return r.ratio("direct", t)
	}
	return r.ratio(t, "direct")
}

// rows evaluates every figure the run measured.
func rows(r *run) []row {
	var out []row
	for _, f := range figures {
		v := map[string]float64{}
		for _, t := range targets {
			if x, ok := r.value(f.benchmark, t+"-"+f.unit); ok {
				v[t] = x
			}
		}
		if len(v) == 0 {
			continue
		}
		rw := row{figure: f, values: v}
		if n, ok := r.value(f.benchmark, f.count); ok && f.count != "" {
			rw.name = fmt.Sprintf("%s (%.0f %s)", f.name, n, f.count)
		}
		if f.check != nil {
			m, detail, ok := f.check(v)
			rw.detail = detail
			switch {
			case !ok:
				rw.verdict = unknown
			case m:
				rw.verdict = met
			default:
				rw.verdict = missed
			}
		}
		out = append(out, rw)
	}
	return out
}
