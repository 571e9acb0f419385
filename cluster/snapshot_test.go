package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"
)

func readCloser(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

// applyLogs applies steps through raft's Apply, as JSON log entries with
// indexes 1, 2, ...
func applyLogs(t testing.TB, f *FSM, steps []step) {
	t.Helper()
	for i, s := range steps {
		b, err := json.Marshal(s.Cmd)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: b}).(Result); !ok {
			t.Fatalf("step %q: Apply did not return a Result", s.Name)
		}
	}
}

func TestApplyMatchesApplyCommand(t *testing.T) {
	steps := loadTranscript(t)
	viaLog := NewFSM()
	applyLogs(t, viaLog, steps)
	if got, want := state(t, viaLog), state(t, replay(steps, -1)); !bytes.Equal(got, want) {
		t.Errorf("Apply and ApplyCommand reached different states:\n%s\n%s", got, want)
	}
	if got := viaLog.AppliedIndex(); got != uint64(len(steps)) {
		t.Errorf("AppliedIndex = %d, want %d", got, len(steps))
	}
	if got := replay(steps, -1).AppliedIndex(); got != 0 {
		t.Errorf("AppliedIndex after ApplyCommand only = %d, want 0", got)
	}
}

func TestSnapshotRestoreRoundtrip(t *testing.T) {
	steps := loadTranscript(t)
	for _, n := range []int{0, 1, len(steps) / 2, len(steps)} {
		orig := NewFSM()
		applyLogs(t, orig, steps[:n])
		snap := snapshotBytes(t, orig)

		restored := NewFSM()
		// Stale state in the target must go.
		restored.ApplyCommand(Command{Op: OpCreate, Now: t0, Request: hold("stale", 1)})
		if err := restored.Restore(readCloser(snap)); err != nil {
			t.Fatalf("%d steps: Restore: %v", n, err)
		}
		if got := snapshotBytes(t, restored); !bytes.Equal(got, snap) {
			t.Errorf("%d steps: snapshot after restore differs:\n%s\n%s", n, got, snap)
		}
		if got, want := restored.AppliedIndex(), orig.AppliedIndex(); got != want {
			t.Errorf("%d steps: AppliedIndex after restore = %d, want %d", n, got, want)
		}
		if got, want := restored.Requests(Filter{}), orig.Requests(Filter{}); !reflect.DeepEqual(got, want) {
			t.Errorf("%d steps: requests after restore:\n%+v\nwant\n%+v", n, got, want)
		}
		if got, want := restored.Grants(""), orig.Grants(""); !reflect.DeepEqual(got, want) {
			t.Errorf("%d steps: grants after restore:\n%+v\nwant\n%+v", n, got, want)
		}

		// The restored machine goes on exactly as the original.
		applyLogs(t, orig, steps[n:])
		rest := NewFSM()
		if err := rest.Restore(readCloser(snap)); err != nil {
			t.Fatal(err)
		}
		for _, s := range steps[n:] {
			rest.ApplyCommand(s.Cmd)
		}
		if got, want := state(t, rest), state(t, orig); !bytes.Equal(got, want) {
			t.Errorf("%d steps: restore then the rest of the transcript differs from a straight run", n)
		}
	}
}

func TestRestoreRefusesBadSnapshots(t *testing.T) {
	steps := loadTranscript(t)
	f := replay(steps, -1)
	before := snapshotBytes(t, f)
	for name, snap := range map[string]string{
		"not json":        "{",
		"no version":      `{"requests":[],"grants":[]}`,
		"future version":  `{"version":2,"requests":[],"grants":[]}`,
		"empty id":        `{"version":1,"requests":[{"id":""}],"grants":[]}`,
		"repeated id":     `{"version":1,"requests":[{"id":"a"},{"id":"a"}],"grants":[]}`,
		"repeated grant":  `{"version":1,"requests":[],"grants":[{"id":"g"},{"id":"g"}]}`,
		"wrong type":      `{"version":1,"requests":{},"grants":[]}`,
		"empty":           ``,
		"bad time":        `{"version":1,"requests":[{"id":"a","createdAt":"yesterday"}],"grants":[]}`,
		"bad grant field": `{"version":1,"requests":[],"grants":[{"id":"g","notAfter":1}]}`,
	} {
		ch := f.Changed("")
		if err := f.Restore(readCloser([]byte(snap))); err == nil {
			t.Errorf("%s: Restore succeeded", name)
		}
		if !bytes.Equal(snapshotBytes(t, f), before) {
			t.Fatalf("%s: a failed Restore changed the state", name)
		}
		if closed(ch) {
			t.Errorf("%s: a failed Restore woke watchers", name)
		}
	}
}

func TestApplyUndecodableEntry(t *testing.T) {
	f := replay(loadTranscript(t), -1)
	before := state(t, f)
	for _, data := range [][]byte{nil, []byte("nope"), []byte(`{"op":`), []byte(`{"op":"create","now":"soon"}`)} {
		res, ok := f.Apply(&raft.Log{Index: 7, Data: data}).(Result)
		if !ok {
			t.Fatalf("%q: Apply did not return a Result value", data)
		}
		if !errors.Is(res.Err, ErrInvalidCommand) || res.Changed || res.Request != nil {
			t.Errorf("%q: Apply = %+v, want only an ErrInvalidCommand", data, res)
		}
	}
	if !bytes.Equal(state(t, f), before) {
		t.Error("an undecodable entry changed the state")
	}
	if got := f.AppliedIndex(); got != 7 {
		t.Errorf("AppliedIndex = %d, want 7: an undecodable entry is still applied", got)
	}
}
