package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// 100 on every Linux architecture Go runs on).
const clockTick = 10 * time.Millisecond

// procStat is what the benchmarks read of a process from /proc/PID/stat.
type procStat struct {
	cpu time.Duration // user + system time so far
	rss int64         // resident set, bytes
}

// readStat reads /proc/PID/stat.
func readStat(pid int) (procStat, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name (field 2) may hold spaces; the fields after it
	// start past the last ')'.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(raw[i+1:]))
	// f[0] is field 3 (state): utime is field 14, stime 15, rss 24.
	if len(f) < 22 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	num := func(field int) int64 { n, _ := strconv.ParseInt(f[field-3], 10, 64); return n }
	return procStat{
		cpu: time.Duration(num(14)+num(15)) * clockTick,
		rss: num(24) * int64(os.Getpagesize()),
	}, nil
}

// sumStat adds up the stats of several processes (nginx's master and
// workers).
func sumStat(pids []int) (procStat, error) {
	var s procStat
	for _, pid := range pids {
		p, err := readStat(pid)
		if err != nil {
			return procStat{}, err
		}
		s.cpu += p.cpu
		s.rss += p.rss
	}
	return s, nil
}

// childrenOf lists the processes whose parent is pid and whose command line
// contains every one of args.
func childrenOf(pid int, args ...string) ([]int, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, d := range dirs {
		child, _ := strconv.Atoi(filepath.Base(d))
		stat, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		i := bytes.LastIndexByte(stat, ')')
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(pid) {
			continue
		}
		cmdline, err := os.ReadFile(d + "/cmdline")
		if err != nil {
			continue
		}
		all := true
		for _, a := range args {
			all = all && bytes.Contains(cmdline, []byte(a))
		}
		if all {
			pids = append(pids, child)
		}
	}
	return pids, nil
}
