// Package raftnode runs kubegate's replicated state machine (cluster.FSM)
// under hashicorp/raft with durable storage: a bolt log and stable store
// and file snapshots in one data directory.
//
// Unlike package cluster it does I/O. A node with no transport is a
// single-node cluster of itself; the HA setup passes a network transport.
package raftnode
