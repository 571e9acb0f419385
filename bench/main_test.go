package bench

import (
	"flag"
	"os"
	"testing"

	"github.com/kubegate/kubegate/internal/testenv"
)

// TestMain starts the test cluster only when benchmarks run: `go test ./...`
// without -bench has nothing here to do.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		os.Exit(m.Run())
	}
	os.Exit(testenv.Main(m))
}
