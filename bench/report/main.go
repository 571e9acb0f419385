package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// commands collects repeated -command flags.
type commands []string

func (c *commands) String() string     { return strings.Join(*c, "; ") }
func (c *commands) Set(s string) error { *c = append(*c, s); return nil }

func main() {
	var cmds commands
	out := flag.String("out", "bench/results", "directory for DATE.md and DATE.png")
	date := flag.String("date", time.Now().Format("2006-01-02"), "the report's date, naming its files")
	flag.Var(&cmds, "command", "a command that produced the input, shown in the report (repeatable)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: report [flags] [BENCH-OUTPUT...]\n\nReads `go test -bench` output (the files, or standard input) and writes the comparison.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := generate(flag.Args(), *out, *date, cmds); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func generate(inputs []string, out, date string, cmds []string) error {
	var readers []io.Reader
	for _, in := range inputs {
		b, err := os.ReadFile(in)
		if err != nil {
			return err
		}
		readers = append(readers, bytes.NewReader(b))
	}
	if len(inputs) == 0 {
		readers = append(readers, os.Stdin)
	}
	r, err := parse(io.MultiReader(readers...))
	if err != nil {
		return err
	}
	if len(r.raw) == 0 {
		return errors.New("no benchmark results in the input")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	m := facts()
	if m.cpu == "" {
		m.cpu = r.cpu
	}
	rep := newReport(r, date, cmds, m, "")
	if png, err := chart(rep.rows, date); err == nil {
		rep.chart = date + ".png"
		if err := os.WriteFile(filepath.Join(out, rep.chart), png, 0o644); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(os.Stderr, "report: no chart:", err)
	}
	md := filepath.Join(out, date+".md")
	if err := os.WriteFile(md, []byte(rep.markdown()), 0o644); err != nil {
		return err
	}
	fmt.Print(rep.text())
	fmt.Printf("wrote %s", md)
	if rep.chart != "" {
		fmt.Printf(" and %s", filepath.Join(out, rep.chart))
	}
	fmt.Println()
	return nil
}

// facts describes this machine.
func facts() machine {
	m := machine{nproc: runtime.NumCPU(), goVersion: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH}
	m.cpu = procField("/proc/cpuinfo", "model name")
	if kb, err := strconv.ParseInt(strings.TrimSuffix(procField("/proc/meminfo", "MemTotal"), " kB"), 10, 64); err == nil {
		m.memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = "Linux " + strings.TrimSpace(string(b))
	}
	if b, err := exec.Command("go", "version").Output(); err == nil {
		m.goVersion = strings.TrimPrefix(strings.TrimSpace(string(b)), "go version ")
	}
	if b, err := exec.Command("nginx", "-v").CombinedOutput(); err == nil {
		m.nginx = strings.TrimPrefix(strings.TrimSpace(string(b)), "nginx version: ")
	}
	return m
}

// procField returns the first "KEY: value" of a /proc file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
