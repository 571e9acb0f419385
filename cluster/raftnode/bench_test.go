package raftnode

import (
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/kubegate/kubegate/cluster"
)

// BenchmarkApplyCreateApprove measures one held request's life on disk: a
// create and an approval, each committed through Raft to the bolt log
// (fsynced) and applied. It reports the time from proposing the approval
// to a watcher of the request waking up.
func BenchmarkApplyCreateApprove(b *testing.B) {
	n, err := Open(b.Context(), Config{ID: "bench", DataDir: b.TempDir(), FSM: cluster.NewFSM(), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	now := time.Now()
	var wake time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		id := "r-" + strconv.Itoa(i)
		res, err := n.Apply(b.Context(), cluster.Command{Op: cluster.OpCreate, Now: now, Request: &cluster.Request{
			ID: id, Kind: cluster.KindHold, Requester: cluster.Person{User: "alice"}, ExpiresAt: now.Add(time.Hour),
			ApproverGroups: []string{"sre"}, ApprovalsRequired: 1, Fingerprint: id,
		}})
		if err != nil || res.Err != nil {
			b.Fatal(err, res.Err)
		}
		changed := n.FSM().Changed(id)
		start := time.Now()
		res, err = n.Apply(b.Context(), cluster.Command{Op: cluster.OpApprove, Now: now, ID: id, By: cluster.Person{User: "bob", Groups: []string{"sre"}}})
		if err != nil || res.Err != nil {
			b.Fatal(err, res.Err)
		}
		<-changed
		wake += time.Since(start)
	}
	b.ReportMetric(float64(wake.Microseconds())/float64(b.N), "µs/approval-to-wake")
}
