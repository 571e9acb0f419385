package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
)

// machine is what the report says about where it ran.
type machine struct {
	nproc                                 int
	cpu, memory, kernel, goVersion, nginx string
}

// report is everything one document shows.
type report struct {
	date     string
	commands []string
	machine  machine
	run      *run
	rows     []row
	extras   []extraRow
	// chart is the PNG's file name, beside the document; "" for none.
	chart string
}

func newReport(r *run, date string, commands []string, m machine, chart string) *report {
	return &report{date: date, commands: commands, machine: m, run: r, rows: rows(r), extras: extras(r), chart: chart}
}

func ratioCell(r row, a, b string) string {
	if x, ok := r.ratio(a, b); ok {
		return fmt.Sprintf("%.2f×", x)
	}
	return "–"
}

func valueCell(r row, t string) string {
	if v, ok := r.values[t]; ok {
		return r.format(v)
	}
	return "–"
}

func verdictCell(v verdict, detail string) string {
	if detail == "" || v == noTarget {
		return v.String()
	}
	return fmt.Sprintf("%s (%s)", v, detail)
}

var header = []string{"figure", "direct", "nginx", "kubegate", "kubegate ÷ direct", "nginx ÷ direct", "kubegate ÷ nginx", "target", "verdict"}

func (r row) cells() []string {
	target := r.target
	if target == "" {
		target = "recorded"
	}
	return []string{r.name, valueCell(r, "direct"), valueCell(r, "nginx"), valueCell(r, "kubegate"),
		ratioCell(r, "kubegate", "direct"), ratioCell(r, "nginx", "direct"), ratioCell(r, "kubegate", "nginx"),
		target, verdictCell(r.verdict, r.detail)}
}

// text is the comparison as `make bench` prints it.
func (rep *report) text() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rep.rows {
		fmt.Fprintln(tw, strings.Join(r.cells(), "\t"))
	}
	tw.Flush()
	if len(rep.extras) > 0 {
		b.WriteString("\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "figure\tvalues\ttarget\tverdict")
		for _, e := range rep.extras {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.name, e.values, orDash(e.target), verdictCell(e.verdict, e.detail))
		}
		tw.Flush()
	}
	met, missed := rep.tally()
	fmt.Fprintf(&b, "\ntargets met: %d, missed: %d\n", len(met), len(missed))
	for _, n := range rep.run.notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// tally lists the figures whose targets were met and missed.
func (rep *report) tally() (metList, missedList []string) {
	add := func(v verdict, name, target, detail string) {
		s := fmt.Sprintf("%s: %s", name, target)
		if detail != "" {
			s += " — " + detail
		}
		switch v {
		case met:
			metList = append(metList, s)
		case missed:
			missedList = append(missedList, s)
		}
	}
	for _, r := range rep.rows {
		add(r.verdict, r.name, r.target, r.detail)
	}
	for _, e := range rep.extras {
		add(e.verdict, e.name, e.target, e.detail)
	}
	return metList, missedList
}

// markdown is the document written to bench/results/DATE.md.
func (rep *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# kubegate benchmarks, %s\n\n", rep.date)
	b.WriteString("kubegate (a separate process; OIDC, policy, audit and session recording on) against direct access to the " +
		"kube-apiserver (admin client certificate) and against nginx (Debian's package, a plain TLS-terminating reverse proxy " +
		"holding the admin's client certificate), all in front of the same apiserver, measured in one run in interleaved rounds. " +
		"Each value is the median over the rounds; a ratio is one median over another. The issue's targets are ratios, " +
		"because absolute numbers on a shared 2-core machine are noisy.\n\n")
	b.WriteString("| " + strings.Join(header, " | ") + " |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---|---|\n")
	for _, r := range rep.rows {
		b.WriteString("| " + strings.Join(r.cells(), " | ") + " |\n")
	}
	if len(rep.extras) > 0 {
		b.WriteString("\nkubegate's own figures (masking against kubegate with masking off; approvals across three kubegate processes):\n\n")
		b.WriteString("| figure | values | target | verdict |\n|---|---|---|---|\n")
		for _, e := range rep.extras {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", e.name, e.values, orDash(e.target), verdictCell(e.verdict, e.detail))
		}
	}
	met, missed := rep.tally()
	fmt.Fprintf(&b, "\n## Targets\n\nMet (%d):\n\n", len(met))
	for _, s := range met {
		fmt.Fprintf(&b, "- %s\n", s)
	}
	if len(met) == 0 {
		b.WriteString("- none\n")
	}
	fmt.Fprintf(&b, "\nMissed (%d):\n\n", len(missed))
	for _, s := range missed {
		fmt.Fprintf(&b, "- %s\n", s)
	}
	if len(missed) == 0 {
		b.WriteString("- none\n")
	}
	if rep.chart != "" {
		fmt.Fprintf(&b, "\n![nginx and kubegate relative to direct access](%s)\n", rep.chart)
	}
	if len(rep.run.notes) > 0 {
		b.WriteString("\n## Notes from the run\n\n")
		for _, n := range rep.run.notes {
			fmt.Fprintf(&b, "- `%s`\n", n)
		}
	}
	m := rep.machine
	b.WriteString("\n## Machine\n\n")
	fmt.Fprintf(&b, "- CPU: %s, nproc %d\n", orDash(m.cpu), m.nproc)
	fmt.Fprintf(&b, "- memory: %s\n- kernel: %s\n- Go: %s\n- nginx: %s\n", orDash(m.memory), orDash(m.kernel), orDash(m.goVersion), orDash(m.nginx))
	b.WriteString("\n## Command\n\n```sh\n")
	for _, c := range rep.commands {
		b.WriteString(c + "\n")
	}
	b.WriteString("```\n")
	for _, c := range rep.run.config {
		fmt.Fprintf(&b, "\nSettings (flags of the bench test binary, or BENCH_* variables): `%s`\n", c)
	}
	if len(rep.run.raw) > 0 {
		b.WriteString("\n## Benchmark output\n\n```\n")
		for _, l := range rep.run.raw {
			b.WriteString(l + "\n")
		}
		b.WriteString("```\n")
	}
	return b.String()
}
