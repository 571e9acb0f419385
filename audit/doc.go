// Package audit records what passes through kubegate: one event per API
// request, asciicast v2 recordings of exec and attach sessions, the sinks
// they stream to, and replay.
package audit
