package bench

import (
	"flag"
	"fmt"
	"os"
	"strconv"
)

// The comparison's sizes and round counts. Each is a flag of the test
// binary whose default comes from an environment variable (what `make bench`
// passes on), else from the value here: the defaults let a full `make bench`
// finish in about 10–15 minutes on 2 cores.
var (
	rounds = intKnob("rounds", "BENCH_ROUNDS", 7,
		"rounds of each comparison; every round measures direct, nginx and kubegate once each, in a rotating order")
	getClients = intKnob("get-clients", "BENCH_GET_CLIENTS", 50,
		"concurrent clients of the GET throughput figure, each with its own keepalive connection")
	getRequests = intKnob("get-requests", "BENCH_GET_REQUESTS", 10000,
		"pod GETs per target per round of the GET throughput (and CPU) figure")
	getSequential = intKnob("get-sequential", "BENCH_GET_SEQUENTIAL", 500,
		"sequential pod GETs per target per round of the GET latency figure")
	execSessions = intKnob("exec-sessions", "BENCH_EXEC_SESSIONS", 200,
		"`exec -- true` sessions per target, protocol and round of the exec setup rate")
	execConcurrency = intKnob("exec-concurrency", "BENCH_EXEC_CONCURRENCY", 8,
		"concurrent sessions of the exec setup rate")
	streamMiB = intKnob("stream-mib", "BENCH_STREAM_MIB", 256,
		"MiB sent through one exec session and through one forwarded connection")
	idleSessions = intKnob("idle-sessions", "BENCH_IDLE_SESSIONS", 2000,
		"concurrent idle attach sessions of the idle streams figure (each costs kubegate 3 file descriptors)")
	idleRounds = intKnob("idle-rounds", "BENCH_IDLE_ROUNDS", 3,
		"rounds of the idle streams figure")
	pprofOn = flag.Bool("pprof", os.Getenv("BENCH_PPROF") != "",
		"serve Go's profiles on the compared kubegate's admin listener (its URL is logged), to profile it during a run (env BENCH_PPROF)")
)

// intKnob defines a flag whose default is the environment variable env, if
// set to an integer, else def.
func intKnob(name, env string, def int, usage string) *int {
	if s := os.Getenv(env); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			panic(fmt.Sprintf("%s=%q: want a positive integer", env, s))
		}
		def = v
	}
	return flag.Int(name, def, usage+" (env "+env+")")
}

// knobs describes the effective settings, for the report.
func knobs() string {
	return fmt.Sprintf("rounds=%d get-clients=%d get-requests=%d get-sequential=%d exec-sessions=%d exec-concurrency=%d stream-mib=%d idle-sessions=%d idle-rounds=%d",
		*rounds, *getClients, *getRequests, *getSequential, *execSessions, *execConcurrency, *streamMiB, *idleSessions, *idleRounds)
}
