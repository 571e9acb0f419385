// Package cluster holds kubegate's replicated state (access requests,
// approvals, grants and held requests) as a deterministic Raft state machine.
//
// The state machine is pure: network, disk and time are its caller's.
package cluster
