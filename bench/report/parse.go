package main

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// run is what a benchmark run printed.
type run struct {
	// metrics holds, by benchmark name (without the -GOMAXPROCS suffix)
	// and unit, every value reported; a benchmark run twice has two.
	metrics map[string]map[string][]float64
	// config is the bench package's "bench-config:" line (its settings).
	config []string
	// cpu is go test's "cpu:" line.
	cpu string
	// notes are lines worth reading: targets left out, failures.
	notes []string
	// raw is every benchmark result line, as printed.
	raw []string
	// failed is set when go test reported a failure.
	failed bool
}

// parse reads `go test -bench` output.
func parse(r io.Reader) (*run, error) {
	out := &run{metrics: map[string]map[string][]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "Benchmark"):
			name, values, ok := parseResult(line)
			if !ok {
				continue // a benchmark's name printed before its log lines
			}
			out.raw = append(out.raw, line)
			m := out.metrics[name]
			if m == nil {
				m = map[string][]float64{}
				out.metrics[name] = m
			}
			for unit, v := range values {
				m[unit] = append(m[unit], v)
			}
		case strings.HasPrefix(line, "bench-config: "):
			c := strings.TrimPrefix(line, "bench-config: ")
			if !slices.Contains(out.config, c) {
				out.config = append(out.config, c)
			}
		case strings.HasPrefix(line, "cpu: "):
			out.cpu = strings.TrimPrefix(line, "cpu: ")
		case strings.HasPrefix(trimmed, "--- FAIL"), strings.HasPrefix(line, "FAIL"), strings.HasPrefix(line, "panic:"):
			out.failed = true
			out.notes = append(out.notes, trimmed)
		case strings.Contains(line, " left out: "):
			out.notes = append(out.notes, trimmed)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading benchmark output: %w", err)
	}
	return out, nil
}

// parseResult parses a result line: "BenchmarkName-2  1  123 ns/op  4.5
// unit ...". ok is false for anything else.
func parseResult(line string) (name string, values map[string]float64, ok bool) {
	f := strings.Fields(line)
	if len(f) < 4 || len(f)%2 != 0 {
		return "", nil, false
	}
	if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
		return "", nil, false
	}
	name = f[0]
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			name = name[:i]
		}
	}
	values = map[string]float64{}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return "", nil, false
		}
		values[f[i+1]] = v
	}
	return name, values, true
}

// value is the median of what benchmark reported in unit.
func (r *run) value(benchmark, unit string) (float64, bool) {
	vs := r.metrics[benchmark][unit]
	if len(vs) == 0 {
		return 0, false
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2], true
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
}
