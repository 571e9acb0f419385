// Package bench measures kubegate end to end against baselines measured in
// the same run: direct access to the apiserver and nginx as a plain proxy.
package bench
