package bench

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"testing"

	"github.com/kubegate/kubegate/internal/testenv"
	"k8s.io/klog/v2"
)

// TestMain starts the test cluster only when benchmarks or the soak
// (KUBEGATE_SOAK) run: `go test ./...` without either has nothing here to
// do. It prints the comparison's
// settings as a "bench-config:" line for the report, and stops nginx and
// kubegate at the end.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); (f == nil || f.Value.String() == "") && os.Getenv(soakEnv) == "" {
		os.Exit(m.Run())
	}
	// client-go logs every closed stream it pings; the figures are what
	// counts here, and errors come back as errors.
	klog.SetSlogLogger(slog.New(slog.DiscardHandler))
	if os.Getenv(soakEnv) == "" {
		fmt.Printf("bench-config: %s\n", knobs())
	}
	code := testenv.Main(m)
	stopComparison()
	os.Exit(code)
}
