// Package raftnode runs kubegate's replicated state machine (cluster.FSM)
// under hashicorp/raft with durable storage: a bolt log and stable store
// and file snapshots in one data directory.
//
// Unlike package cluster it does I/O. A node without Config.Bind is a
// single-node cluster of itself (or runs on a caller's raft.Transport). A
// node with Bind is a member of a cluster of three or more over mutual
// TLS: one peer port per node carries Raft and kubegate's peer RPC, told
// apart by the first byte after the handshake. Peer RPC forwards writes
// and membership changes to the leader, so they work from any node, and
// carries the gateway's own calls (Config.Handlers, Node.Call).
//
// # Reads
//
// The gateway reads its local FSM (a hold's state, a grant) and serves
// those reads only from a node that is Ready. Raft hands the FSM every
// entry as soon as it learns the entry is committed, in order, so a Ready
// node has applied everything up to the commit index it knows, less the
// entries being applied at that moment; and since a Ready follower heard
// from the leader within 2×HeartbeatTimeout, and a leader still has its
// quorum (Raft makes it step down otherwise), what it misses is at most
// what the cluster committed in that time. Open does not return before
// the node has caught up with the leader (Sync), so a restarted or new
// node does not serve an old state. On top of that:
//   - a caller's own write is visible at once: Apply on a follower waits
//     until the local FSM has applied the entry;
//   - a caller that must see every write acknowledged anywhere before it
//     (a linearizable read) calls Node.Sync first.
//
// Stale reads are safe for the gateway's holds: a hold released by an
// approval that has not reached this node yet waits for it, through
// FSM.Changed.
package raftnode
