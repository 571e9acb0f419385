package cluster

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/hashicorp/raft"
)

// snapshotVersion is the version of the snapshot format Snapshot writes
// and Restore reads.
const snapshotVersion = 1

// snapshotData is the snapshot format: all requests and grants, each
// sorted by ID, so that equal states give equal bytes.
type snapshotData struct {
	Version      int       `json:"version"`
	AppliedIndex uint64    `json:"appliedIndex"`
	Requests     []Request `json:"requests"`
	Grants       []Grant   `json:"grants"`
}

// Apply applies a Raft log entry holding a JSON-encoded Command and
// returns its Result (a value, not a pointer). An entry that does not
// decode gives a Result whose Err wraps ErrInvalidCommand. It implements
// raft.FSM.
func (f *FSM) Apply(l *raft.Log) interface{} {
	var c Command
	decodeErr := json.Unmarshal(l.Data, &c)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = l.Index
	if decodeErr != nil {
		return Result{Err: fmt.Errorf("%w: log entry %d: %w", ErrInvalidCommand, l.Index, decodeErr)}
	}
	return f.applyLocked(c)
}

// data returns the state as a snapshot. f.mu is held.
func (f *FSM) data() snapshotData {
	d := snapshotData{
		Version:      snapshotVersion,
		AppliedIndex: f.applied,
		Requests:     make([]Request, 0, len(f.requests)),
		Grants:       make([]Grant, 0, len(f.grants)),
	}
	for _, r := range f.requests {
		d.Requests = append(d.Requests, *r)
	}
	for _, g := range f.grants {
		d.Grants = append(d.Grants, *g)
	}
	slices.SortFunc(d.Requests, func(a, b Request) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(d.Grants, func(a, b Grant) int { return cmp.Compare(a.ID, b.ID) })
	return d
}

// Snapshot returns a snapshot of the whole state as deterministic JSON. It
// implements raft.FSM; the state is encoded before Snapshot returns, so
// Persist may run alongside later commands.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := json.Marshal(f.data())
	if err != nil {
		return nil, fmt.Errorf("encoding snapshot: %w", err)
	}
	return fsmSnapshot(b), nil
}

// Restore replaces the state with the snapshot rc holds, and closes rc. It
// wakes every Changed channel. A snapshot that does not decode leaves the
// state unchanged. It implements raft.FSM.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var d snapshotData
	if err := json.NewDecoder(rc).Decode(&d); err != nil {
		return fmt.Errorf("decoding snapshot: %w", err)
	}
	if d.Version != snapshotVersion {
		return fmt.Errorf("snapshot format version %d, want %d", d.Version, snapshotVersion)
	}
	requests := make(map[string]*Request, len(d.Requests))
	for i := range d.Requests {
		r := &d.Requests[i]
		if _, dup := requests[r.ID]; dup || r.ID == "" {
			return fmt.Errorf("snapshot: bad or repeated request id %q", r.ID)
		}
		requests[r.ID] = r
	}
	grants := make(map[string]*Grant, len(d.Grants))
	for i := range d.Grants {
		g := &d.Grants[i]
		if _, dup := grants[g.ID]; dup || g.ID == "" {
			return fmt.Errorf("snapshot: bad or repeated grant id %q", g.ID)
		}
		grants[g.ID] = g
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests, f.grants, f.applied = requests, grants, d.AppliedIndex
	for _, ch := range f.waiters {
		close(ch)
	}
	clear(f.waiters)
	return nil
}

// fsmSnapshot is an encoded snapshot waiting to be persisted.
type fsmSnapshot []byte

// Persist writes the snapshot to sink and closes it, or cancels it on
// failure.
func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return fmt.Errorf("writing snapshot: %w", err)
	}
	return sink.Close()
}

// Release does nothing: the snapshot holds no resources.
func (fsmSnapshot) Release() {}
