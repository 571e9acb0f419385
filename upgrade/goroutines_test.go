package upgrade

import (
	"runtime"
	"strings"
)

// goroutinesIn returns the stacks of running goroutines whose stack names
// any of markers, keyed by goroutine id, except the caller's. The leak
// checks of the port-forward and exec tests compare two of these.
func goroutinesIn(markers []string) map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 {
			continue // the caller
		}
		for _, m := range markers {
			if strings.Contains(g, m) {
				id, _, _ := strings.Cut(strings.TrimPrefix(g, "goroutine "), " ")
				out[id] = g
				break
			}
		}
	}
	return out
}
