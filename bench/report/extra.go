package main

import (
	"fmt"
	"strings"
)

// extraRow is a figure of kubegate alone (masking, approvals), shown as
// one line of values.
type extraRow struct {
	name, values, target string
	verdict              verdict
	detail               string
}

// extras evaluates the masking and HA benchmarks, when the run has them.
func extras(r *run) []extraRow {
	var out []extraRow
	for _, ct := range []struct{ sub, name string }{{"json", "JSON"}, {"protobuf", "protobuf"}} {
		b := "BenchmarkMaskList/" + ct.sub
		ratio, ok := r.value(b, "masked/unmasked")
		if !ok {
			continue
		}
		row := extraRow{
			name:    "masking: list of 5,000 Secrets, " + ct.name,
			values:  joinValues(r, b, []string{"direct", "unmasked", "masked"}, "-MiB/s", mibps),
			target:  "masked ≥ 0.5× unmasked",
			verdict: missed,
			detail:  fmt.Sprintf("%.2f× unmasked", ratio),
		}
		if ratio >= 0.5 {
			row.verdict = met
		}
		out = append(out, row)
	}
	if _, ok := r.value("BenchmarkMaskWatchEvent", "masked-p50-ms"); ok {
		out = append(out, extraRow{name: "masking: Secret watch event delay p50",
			values: joinValues(r, "BenchmarkMaskWatchEvent", []string{"direct", "unmasked", "masked"}, "-p50-ms", ms)})
	}
	if p99, ok := r.value("BenchmarkHAApprovalToRelease", "p99-ms"); ok {
		row := extraRow{name: "approval release: commit → held request forwarded (3 nodes)",
			values: joinValues(r, "BenchmarkHAApprovalToRelease", []string{"p50", "p99"}, "-ms", ms),
			target: "p99 ≤ 50 ms", verdict: missed, detail: "p99 " + ms(p99)}
		if p99 <= 50 {
			row.verdict = met
		}
		out = append(out, row)
	}
	if _, ok := r.value("BenchmarkHALeaderFailover", "p50-ms"); ok {
		out = append(out, extraRow{name: "leader failover: SIGKILL → approval commits through a survivor",
			values: joinValues(r, "BenchmarkHALeaderFailover", []string{"p50", "max"}, "-ms", ms)})
	}
	return out
}

func ms(v float64) string { return fmt.Sprintf("%.1f ms", v) }

// joinValues shows "NAME VALUE" for each name whose metric NAME+suffix the
// benchmark reported.
func joinValues(r *run, benchmark string, names []string, suffix string, format func(float64) string) string {
	var parts []string
	for _, n := range names {
		if v, ok := r.value(benchmark, n+suffix); ok {
			parts = append(parts, n+" "+format(v))
		}
	}
	return strings.Join(parts, ", ")
}
