package upgrade

// Tap receives a decoded exec or attach session's traffic as it crosses
// the gateway. Methods may be called concurrently (stdout and stderr are
// copied by separate goroutines); each stream's calls come in order. An error from any method means the recording failed;
// the relay then ends the session unless it is configured to go on without
// a recording (and that choice is audited).
type Tap interface {
	// Input is data the client sent to the process's stdin.
	Input(p []byte) error
	// Output is data the process wrote to stdout (or the terminal, with a tty).
	Output(p []byte) error
	// ErrorOutput is data the process wrote to stderr.
	ErrorOutput(p []byte) error
	// Resize is a terminal size change the client sent.
	Resize(width, height uint16) error
}
