package cluster

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// RetryWindow is how long after a hold was denied or expired a client's
// retry of the same call (same requester and Fingerprint) still joins it,
// and so gets the same answer, rather than opening a new request.
const RetryWindow = time.Minute

// ReuseWindow is how long after an approved hold would have expired its
// unused approval may still release a retry of the same call: the client's
// first connection may have died while it waited (a gateway restart, say),
// and its retry should not need a second approval. OpUse of the approval is
// refused after this window too.
const ReuseWindow = 10 * time.Minute

// FSM is kubegate's deterministic replicated state machine: access
// requests and grants, changed only by Commands. The same commands in the
// same order give the same state and byte-identical snapshots; it reads no
// clock and does no I/O. FSM is safe for concurrent use: commands take a
// write lock and reads a read lock.
type FSM struct {
	mu       sync.RWMutex
	requests map[string]*Request
	grants   map[string]*Grant
	applied  uint64
	// waiters holds the channels Changed handed out, by id; "" is anything.
	waiters map[string]chan struct{}
}

var _ raft.FSM = (*FSM)(nil)

// NewFSM returns an empty state machine.
func NewFSM() *FSM {
	return &FSM{
		requests: make(map[string]*Request),
		grants:   make(map[string]*Grant),
		waiters:  make(map[string]chan struct{}),
	}
}

// Filter selects access requests for Requests. A zero field matches
// anything.
type Filter struct {
	Kind  Kind
	State State
	// Requester matches Request.Requester.User.
	Requester string
}

func (flt Filter) match(r *Request) bool {
	return (flt.Kind == "" || r.Kind == flt.Kind) &&
		(flt.State == "" || r.State == flt.State) &&
		(flt.Requester == "" || r.Requester.User == flt.Requester)
}

// ApplyCommand applies one command and returns its result. It is
// deterministic: times come from c.Now, ids from the command. A Result
// with Err set left the state unchanged. Times are stored in UTC.
func (f *FSM) ApplyCommand(c Command) Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applyLocked(c)
}

// applyLocked is ApplyCommand with f.mu held for writing.
func (f *FSM) applyLocked(c Command) Result {
	switch c.Op {
	case OpCreate, OpApprove, OpDeny, OpUse, OpExpire, OpRevoke, OpPrune:
	default:
		return Result{Err: fmt.Errorf("%w %q", ErrUnknownCommand, c.Op)}
	}
	if c.Now.IsZero() {
		return refuse(ErrInvalidCommand, "%s: the command has no time (Now)", c.Op)
	}
	now := c.Now.UTC()
	var res Result
	switch c.Op {
	case OpCreate:
		res = f.create(c.Request, now)
	case OpApprove, OpDeny:
		res = f.decide(c, now)
	case OpUse:
		res = f.use(c, now)
	case OpExpire:
		res = f.expire(c, now)
	case OpRevoke:
		res = f.revoke(c, now)
	case OpPrune:
		res = f.prune(c, now)
	}
	if res.Changed {
		f.wake("")
	}
	return res
}

// refuse returns a Result carrying err, wrapped with context.
func refuse(err error, format string, args ...any) Result {
	return Result{Err: fmt.Errorf(format+": %w", append(args, err)...)}
}

// wake closes and forgets the Changed channel of id, if any. f.mu is held
// for writing.
func (f *FSM) wake(id string) {
	if ch, ok := f.waiters[id]; ok {
		close(ch)
		delete(f.waiters, id)
	}
}

// Changed returns a channel that is closed at the next applied change of
// the request or grant named id (for id "", of anything) and on Restore. A
// no-op command does not close it. Take the channel before reading the
// state, then wait on it: a change between the two still closes it.
// Request and grant ids share one namespace here, so a wake-up may be
// spurious; re-read the state after it.
func (f *FSM) Changed(id string) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch, ok := f.waiters[id]
	if !ok {
		ch = make(chan struct{})
		f.waiters[id] = ch
	}
	return ch
}

// AppliedIndex is the Raft index of the last log entry applied through
// Apply, or restored by Restore; it stays 0 when only ApplyCommand is used.
// Raft's own entries (configuration changes, no-ops) do not reach the FSM
// and do not move it.
func (f *FSM) AppliedIndex() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.applied
}

// Get returns a copy of the access request id.
func (f *FSM) Get(id string) (Request, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	r, ok := f.requests[id]
	if !ok {
		return Request{}, false
	}
	return *cloneRequest(r), true
}

// Requests returns copies of the access requests filter matches, sorted by
// CreatedAt then ID.
func (f *FSM) Requests(filter Filter) []Request {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []Request
	for _, r := range f.requests {
		if filter.match(r) {
			out = append(out, *cloneRequest(r))
		}
	}
	slices.SortFunc(out, func(a, b Request) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// Grant returns a copy of the grant id.
func (f *FSM) Grant(id string) (Grant, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	g, ok := f.grants[id]
	if !ok {
		return Grant{}, false
	}
	return *cloneGrant(g), true
}

// Grants returns copies of the grants held by the user holder ("" for
// everybody's), ended and revoked ones included (until pruned), sorted by
// NotBefore then ID. Use Grant.ActiveAt to pick those in force.
func (f *FSM) Grants(holder string) []Grant {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []Grant
	for _, g := range f.grants {
		if holder == "" || g.Holder.User == holder {
			out = append(out, *cloneGrant(g))
		}
	}
	slices.SortFunc(out, func(a, b Grant) int {
		return cmp.Or(a.NotBefore.Compare(b.NotBefore), cmp.Compare(a.ID, b.ID))
	})
	return out
}
