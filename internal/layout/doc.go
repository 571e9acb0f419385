// Package layout checks the repository's shape: every package documents its
// purpose in a doc.go, and the pure core packages keep away from I/O.
package layout
