package cluster

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/hashicorp/raft"
)

// FuzzFSMApply feeds arbitrary bytes to Apply as a log entry, on top of
// the state halfway through the transcript. Apply must not panic, a
// refusal or no-op must leave the state as it was, and two replicas given
// the same entry must end byte-identical.
func FuzzFSMApply(f *testing.F) {
	steps := loadTranscript(f)
	for _, s := range steps {
		b, err := json.Marshal(s.Cmd)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, seed := range []string{
		"", "null", "{}", "[]", `{"op":"create","now":"2030-01-01T10:00:00Z","request":null}`,
		`{"op":"prune","now":"2030-01-01T12:00:00Z","before":"2030-01-01T12:00:00Z"}`,
		`{"op":"approve","now":"0001-01-01T00:00:00Z","id":"h3","by":{"user":"carol","groups":["sre"]}}`,
	} {
		f.Add([]byte(seed))
	}
	base := snapshotBytes(f, replay(steps, len(steps)/2))

	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := NewFSM(), NewFSM()
		for _, r := range []*FSM{a, b} {
			if err := r.Restore(readCloser(base)); err != nil {
				t.Fatal(err)
			}
		}
		before := state(t, a)
		l := &raft.Log{Index: 1000, Type: raft.LogCommand, Data: data}
		res, ok := a.Apply(l).(Result)
		if !ok {
			t.Fatal("Apply did not return a Result")
		}
		if res.Err != nil && (res.Changed || res.Request != nil || res.Grant != nil) {
			t.Fatalf("a refusal carries results: %+v", res)
		}
		if after := state(t, a); !res.Changed && !bytes.Equal(before, after) {
			t.Fatalf("Apply (err %v) changed the state without saying so", res.Err)
		}
		resB := b.Apply(l).(Result)
		if (res.Err == nil) != (resB.Err == nil) || res.Changed != resB.Changed {
			t.Fatalf("replicas disagree: %+v vs %+v", res, resB)
		}
		if !bytes.Equal(snapshotBytes(t, a), snapshotBytes(t, b)) {
			t.Fatal("replicas given the same entry have different snapshots")
		}
	})
}
