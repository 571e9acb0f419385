// Package e2e holds end-to-end tests that drive the real kubectl and
// client-go against a real control plane started by internal/testenv.
package e2e
