package upgrade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	serverremotecommand "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/streaming/pkg/httpstream/wsstream"
	utilexec "k8s.io/utils/exec"
)

// WebSocket channel numbers and protocols (k8s.io/apimachinery
// pkg/util/remotecommand/constants.go).
const (
	chanStdin  = 0
	chanStdout = 1
	chanStderr = 2
	chanError  = 3
	chanResize = 4

	wsProtocolV5       = "v5.channel.k8s.io"
	wsProtocolV4       = "v4.channel.k8s.io"
	wsProtocolV4Base64 = "v4.base64.channel.k8s.io"
	wsProtocolV1       = "channel.k8s.io"
	wsProtocolV1Base64 = "base64.channel.k8s.io"

	wsStatusWriteTimeout = 10 * time.Second
)

// serveWebSocket terminates an exec or attach over any WebSocket channel
// protocol, v5 (with its stdin close signal) included, and runs the session
// through r.
func serveWebSocket(w http.ResponseWriter, req *http.Request, opts *serverremotecommand.Options, r *relay) {
	conn := newWSChannelConn(opts)
	conn.SetIdleTimeout(streamIdleTimeout)
	wsOut := &wsOutput{idle: streamIdleTimeout}
	protocol, streams, err := conn.Open(wsCheckingWriter{ResponseWriter: w, maxFrame: r.cfg.MaxFrameBytes, out: wsOut}, req)
	if err != nil {
		// Open has already answered the client (the handshake failed).
		r.finish(fmt.Errorf("websocket handshake: %w", err))
		return
	}
	defer conn.Close()
	r.setProtocol("websocket " + protocol)

	// Tell the client the streams are ready: an empty message on the lowest
	// writable channel, as the apiserver and kubelet do.
	switch {
	case opts.Stdout:
		_, err = streams[chanStdout].Write(nil)
	case opts.Stderr:
		_, err = streams[chanStderr].Write(nil)
	default:
		_, err = streams[chanError].Write(nil)
	}
	if err != nil {
		r.finish(fmt.Errorf("websocket: announcing streams: %w", err))
		return
	}

	ctx, cancel := context.WithCancel(req.Context())
	defer cancel()
	var resize chan serverremotecommand.TerminalSize
	if opts.TTY {
		resize = make(chan serverremotecommand.TerminalSize)
		go readResizes(ctx, streams[chanResize], resize)
	}
	var in io.Reader
	if opts.Stdin {
		in = streams[chanStdin]
	}
	var out, errOut io.Writer
	if opts.Stdout {
		out = streams[chanStdout]
	}
	if opts.Stderr {
		errOut = streams[chanStderr]
	}
	// Binary channel protocols: output goes around wsstream (see wsOutput).
	if wsOut.conn != nil && wsBinaryProtocol(protocol) {
		if opts.Stdout {
			out = wsChannelWriter{out: wsOut, ch: chanStdout}
		}
		if opts.Stderr {
			errOut = wsChannelWriter{out: wsOut, ch: chanStderr}
		}
	}
	runErr := r.run(ctx, in, out, errOut, opts.TTY, resize)
	conn.SetWriteDeadline(wsStatusWriteTimeout)
	if err := writeExitStatus(streams[chanError], protocol, runErr); err != nil {
		r.cfg.Log.Debug("writing exec status to the client", "err", err)
	}
}

// newWSChannelConn is the channel framing of an exec or attach over
// WebSocket: each message's first byte names its channel (a digit in the
// base64 protocols), v5 adds the stdin close signal.
func newWSChannelConn(opts *serverremotecommand.Options) *wsstream.Conn {
	channels := make([]wsstream.ChannelType, 5)
	channels[chanStdin] = channelIf(opts.Stdin, wsstream.ReadChannel)
	channels[chanStdout] = channelIf(opts.Stdout, wsstream.WriteChannel)
	channels[chanStderr] = channelIf(opts.Stderr, wsstream.WriteChannel)
	channels[chanError] = wsstream.WriteChannel
	// Without a tty nothing reads resizes: the channel must then discard
	// them, as wsstream feeds every channel from one reader, which would
	// block on an unread pipe, and stdin and the close signal with it.
	channels[chanResize] = channelIf(opts.TTY, wsstream.ReadChannel)
	binary := wsstream.ChannelProtocolConfig{Binary: true, Channels: channels}
	text := wsstream.ChannelProtocolConfig{Binary: false, Channels: channels}
	return wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
		"":                 binary,
		wsProtocolV1:       binary,
		wsProtocolV1Base64: text,
		wsProtocolV4:       binary,
		wsProtocolV4Base64: text,
		wsProtocolV5:       binary,
	})
}

// wsBinaryProtocol reports whether a channel protocol sends binary
// messages whose first byte is the channel (the base64 ones send text).
func wsBinaryProtocol(protocol string) bool {
	switch protocol {
	case "", wsProtocolV1, wsProtocolV4, wsProtocolV5:
		return true
	}
	return false
}

func channelIf(on bool, t wsstream.ChannelType) wsstream.ChannelType {
	if on {
		return t
	}
	return wsstream.IgnoreChannel
}

// readResizes decodes the resize channel's JSON TerminalSize stream. A
// resize that is not JSON ends resizing, but not the reading: the rest of
// the channel is discarded, as wsstream feeds every channel from one
// reader, which would block on an unread pipe, and stdin and the close
// signal with it.
func readResizes(ctx context.Context, r io.Reader, ch chan<- serverremotecommand.TerminalSize) {
	dec := json.NewDecoder(r)
	for {
		var size serverremotecommand.TerminalSize
		if err := dec.Decode(&size); err != nil {
			break // EOF, or a resize that is not JSON: resizing ends
		}
		select {
		case ch <- size:
		case <-ctx.Done():
			close(ch)
			return
		}
	}
	close(ch)
	_, _ = io.Copy(io.Discard, r)
}

// writeExitStatus reports the session's end on the error channel or
// stream: a JSON Status for v4 and v5, plain text on failure only for
// older protocols.
func writeExitStatus(w io.Writer, protocol string, err error) error {
	if protocol != wsProtocolV4 && protocol != wsProtocolV4Base64 && protocol != wsProtocolV5 {
		if err == nil {
			return nil
		}
		_, werr := w.Write([]byte(err.Error()))
		return werr
	}
	st := metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess}
	var exitErr utilexec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr) && exitErr.Exited():
		st.Status = metav1.StatusFailure
		st.Reason = serverremotecommand.NonZeroExitCodeReason
		st.Message = fmt.Sprintf("command terminated with non-zero exit code: %v", err)
		st.Details = &metav1.StatusDetails{Causes: []metav1.StatusCause{{
			Type: serverremotecommand.ExitCodeCauseType, Message: strconv.Itoa(exitErr.ExitStatus()),
		}}}
	default:
		st.Status = metav1.StatusFailure
		st.Reason = metav1.StatusReasonInternalError
		st.Code = http.StatusInternalServerError
		st.Message = fmt.Sprintf("error executing command in container: %v", err)
	}
	b, jerr := json.Marshal(st)
	if jerr != nil {
		return jerr
	}
	_, werr := w.Write(b)
	return werr
}
