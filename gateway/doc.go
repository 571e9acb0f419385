// Package gateway is kubegate's per-request pipeline: authenticate,
// classify, decide, forward or relay, mask and record, in that order.
package gateway
