package e2e

import (
	"os"
	"testing"

	"github.com/kubegate/kubegate/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
