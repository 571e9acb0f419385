// Package s3test runs a real S3-compatible server (versitygw, built from the
// pinned tools module under tools/versitygw) on loopback for tests of the
// audit store and its sinks.
//
// Each Server is one versitygw process in its own process group with a
// random access key and secret and a posix backend in a directory the test
// owns; the kernel kills it if the test binary dies first. Restart brings it
// back on the same port with the same data, for outage tests.
//
// Tests skip when the binary is not built yet: Start returns an error
// matching ErrNotBuilt, whose message says how to build it.
package s3test
