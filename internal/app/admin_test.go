package app

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestPprofOnlyWhenAsked: Go's profiles are on the admin listener only
// with admin.pprof, and never on the gateway's listener (which serves the
// gateway handler alone).
func TestPprofOnlyWhenAsked(t *testing.T) {
	for _, on := range []bool{false, true} {
		h := (&Node{pprof: on}).adminHandler(prometheus.NewRegistry())
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/pprof/heap", nil))
		if got := rec.Code == http.StatusOK; got != on {
			t.Errorf("admin.pprof %t: GET /debug/pprof/heap answered %d", on, rec.Code)
		}
	}
}
