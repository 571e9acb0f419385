package main

import (
	"bytes"
	"image/png"
	"os"
	"strings"
	"testing"
)

func sample(t *testing.T) *run {
	t.Helper()
	f, err := os.Open("testdata/bench.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParseResult(t *testing.T) {
	for _, tc := range []struct {
		line, name string
		values     map[string]float64
		ok         bool
	}{
		{"BenchmarkDecide-2   \t 1000000\t      1041 ns/op\t     128 B/op", "BenchmarkDecide", map[string]float64{"ns/op": 1041, "B/op": 128}, true},
		{"BenchmarkExecSetupRate/spdy-2 \t 1\t 5 ns/op\t 174.0 direct-sessions/s", "BenchmarkExecSetupRate/spdy", map[string]float64{"ns/op": 5, "direct-sessions/s": 174}, true},
		{"BenchmarkMaskList/json-x-16 1 5 ns/op", "BenchmarkMaskList/json-x", map[string]float64{"ns/op": 5}, true},
		{"BenchmarkExecSetupRate/websocket", "", nil, false},
		{"BenchmarkX-2 1 5 ns/op 7", "", nil, false},
		{"BenchmarkX-2 one 5 ns/op", "", nil, false},
	} {
		name, values, ok := parseResult(tc.line)
		if ok != tc.ok || name != tc.name || len(values) != len(tc.values) {
			t.Errorf("parseResult(%q) = %q, %v, %v; want %q, %v, %v", tc.line, name, values, ok, tc.name, tc.values, tc.ok)
			continue
		}
		for u, v := range tc.values {
			if values[u] != v {
				t.Errorf("parseResult(%q)[%s] = %v, want %v", tc.line, u, values[u], v)
			}
		}
	}
}

func TestParse(t *testing.T) {
	r := sample(t)
	if r.failed {
		t.Error("a passing run parsed as failed")
	}
	if len(r.config) != 1 || !strings.HasPrefix(r.config[0], "rounds=2 ") {
		t.Errorf("config = %q", r.config)
	}
	if r.cpu != "AMD EPYC" {
		t.Errorf("cpu = %q", r.cpu)
	}
	if len(r.notes) != 1 || !strings.Contains(r.notes[0], "nginx left out") {
		t.Errorf("notes = %q", r.notes)
	}
	// Three runs of one benchmark: the median of each metric.
	if v, _ := r.value("BenchmarkHAApprovalToRelease", "p99-ms"); v != 28 {
		t.Errorf("median p99 = %v, want 28", v)
	}
	if _, ok := r.value("BenchmarkGetLatency", "direct-p75-µs"); ok {
		t.Error("a metric never reported has a value")
	}
}

func TestRows(t *testing.T) {
	got := map[string]row{}
	for _, r := range rows(sample(t)) {
		got[r.name+" "+r.unit] = r
	}
	for _, tc := range []struct {
		key     string
		verdict verdict
		detail  string
	}{
		{"API GET throughput (50 clients) req/s", missed, "0.46× direct, 0.66× nginx"},
		{"API GET latency p50 (sequential) p50-µs", missed, "+0.63 ms"},
		{"API GET latency p99 (sequential) p99-µs", missed, "+1.16 ms"},
		{"exec setup rate, WebSocket (concurrency 8) sessions/s", met, "0.88× direct"},
		{"exec setup rate, SPDY (concurrency 8) sessions/s", missed, "0.68× direct"},
		{"idle attach sessions: proxy RSS per session (200 sessions) KiB/session", met, "62.3 KiB"},
		{"proxy CPU per 1,000 GETs (user+sys) cpu-ms/1k", noTarget, ""},
	} {
		r, ok := got[tc.key]
		if !ok {
			t.Errorf("no row %q", tc.key)
			continue
		}
		if r.verdict != tc.verdict || r.detail != tc.detail {
			t.Errorf("%s: %v (%s), want %v (%s)", tc.key, r.verdict, r.detail, tc.verdict, tc.detail)
		}
	}
	if _, ok := got["port-forward throughput, SPDY MiB/s"]; ok {
		t.Error("a figure the run did not measure has a row")
	}
	ws := got["exec setup rate, WebSocket (concurrency 8) sessions/s"]
	if _, ok := ws.values["nginx"]; ok {
		t.Error("nginx, left out of the WebSocket exec figure, has a value")
	}
	lat := got["API GET latency p50 (sequential) p50-µs"]
	if s, _ := lat.speedup("kubegate"); s > 0.58 || s < 0.56 {
		t.Errorf("latency speedup = %v, want direct/kubegate ≈ 0.57", s)
	}
}

func TestExtras(t *testing.T) {
	var got []string
	for _, e := range extras(sample(t)) {
		got = append(got, e.name+": "+e.verdict.String()+" ("+e.detail+")")
	}
	want := []string{
		"masking: list of 5,000 Secrets, JSON: met (0.61× unmasked)",
		"masking: list of 5,000 Secrets, protobuf: missed (0.40× unmasked)",
		"approval release: commit → held request forwarded (3 nodes): met (p99 28.0 ms)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("extras:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestMarkdownIsAFunctionOfItsInputs(t *testing.T) {
	m := machine{nproc: 2, cpu: "AMD EPYC", memory: "24.0 GiB", kernel: "Linux 6.1", goVersion: "go1.26.8 linux/amd64", nginx: "nginx/1.22.1"}
	a := newReport(sample(t), "2026-01-02", []string{"make bench"}, m, "2026-01-02.png").markdown()
	b := newReport(sample(t), "2026-01-02", []string{"make bench"}, m, "2026-01-02.png").markdown()
	if a != b {
		t.Fatal("the same inputs gave two documents")
	}
	for _, want := range []string{
		"# kubegate benchmarks, 2026-01-02",
		"| API GET throughput (50 clients) | 4470/s | 3107/s | 2041/s | 0.46× | 0.70× | 0.66× | ≥ 0.9× direct and ≥ 1.0× nginx | missed (0.46× direct, 0.66× nginx) |",
		"| exec setup rate, WebSocket (concurrency 8) | 171/s | – | 150/s | 0.88× | – | – | ≥ 0.8× direct | met (0.88× direct) |",
		"![nginx and kubegate relative to direct access](2026-01-02.png)",
		"- CPU: AMD EPYC, nproc 2",
		"```sh\nmake bench\n```",
		"Settings (flags of the bench test binary, or BENCH_* variables): `rounds=2 ",
		"BenchmarkDecide-2",
	} {
		if !strings.Contains(a, want) {
			t.Errorf("the document lacks %q:\n%s", want, a)
		}
	}
}

func TestChart(t *testing.T) {
	r := newReport(sample(t), "2026-01-02", nil, machine{}, "")
	b, err := chart(r.rows, r.date)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds().Dx() < 500 {
		t.Errorf("chart is %v", img.Bounds())
	}
	if _, err := chart(nil, "2026-01-02"); err == nil {
		t.Error("a chart of nothing")
	}
}
