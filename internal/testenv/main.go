package testenv

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

var shared *Env

// startTimeout bounds a warm start; a cold start builds binaries first and
// is bounded by the go build, not by this.
const startTimeout = 10 * time.Minute

// Main starts one Env for the test binary, runs its tests and stops the Env,
// also when tests fail. Call it from TestMain: os.Exit(testenv.Main(m)).
func Main(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	env, err := Start(ctx, Options{Progress: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	shared = env
	defer env.Stop()
	code := m.Run()
	rep, err := env.CheckHygiene()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv: secrets hygiene:", err)
		return 1
	}
	if len(rep.Leaks) > 0 {
		for _, l := range rep.Leaks {
			fmt.Fprintln(os.Stderr, "testenv: secrets hygiene:", l)
		}
		return 1
	}
	if len(rep.Files) > 0 {
		fmt.Fprintf(os.Stderr, "testenv: secrets hygiene: %d secrets, none in %d files of kubegate's logs, audit events and recordings\n", rep.Secrets, len(rep.Files))
	}
	return code
}

// Get returns the Env that Main started.
func Get(t testing.TB) *Env {
	t.Helper()
	if shared == nil {
		t.Fatal("testenv: no shared Env; call testenv.Main from TestMain")
	}
	return shared
}
