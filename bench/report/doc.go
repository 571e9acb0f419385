// Command report turns the output of the end-to-end benchmarks in bench/
// into the comparison `make bench` prints and keeps: a table of medians
// with kubegate's and nginx's ratios to direct access (and kubegate's to
// nginx), whether each of the targets is met, the machine it ran
// on, and a PNG bar chart of the ratios.
//
//	go run ./bench/report -in bench.txt -out bench/results -command "..."
//
// It reads `go test -bench` output as printed (several runs may be
// concatenated), so the same input always gives the same report.
package main
