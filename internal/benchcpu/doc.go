// Package benchcpu reports a benchmark's CPU time (user and system) per
// op, a figure other load on a shared machine inflates far less than the
// time per op.
package benchcpu
