package gateway

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/kubegate/kubegate/k8swire"
	"github.com/kubegate/kubegate/upgrade"
)

// wsCloseWait bounds how long a close frame may take to write.
const wsCloseWait = 5 * time.Second

// serveWatchWebSocket relays a watch a client opened over WebSocket
// (`?watch=true` with `Upgrade: websocket`, as browser and JavaScript
// clients do). The apiserver sends each event as one message, JSON (text)
// or protobuf (binary) per the upgrade's Content-Type; kubegate masks each
// message before the client sees it, and an event it cannot mask closes
// the watch (code 1011) instead of being sent.
//
// The upstream upgrade comes first: its refusal is passed on as an HTTP
// reply, and only then is the client's connection upgraded.
func (g *Gateway) serveWatchWebSocket(w http.ResponseWriter, r *http.Request, x *exchange) error {
	if g.cfg.StreamUpstream == nil {
		return ErrStreamsUnavailable
	}
	u := *g.cfg.Upstream
	u.Path = r.URL.Path
	u.RawQuery = r.URL.RawQuery
	masking := x.mask == maskOn
	hdr := http.Header{}
	if a := r.Header.Get("Accept"); a != "" {
		hdr.Set("Accept", a)
	}
	// The apiserver's WebSocket handler (golang.org/x/net/websocket)
	// refuses a handshake without an Origin with a bare 403; browsers send
	// one, other clients (client-go) do not, so kubegate names its
	// upstream then.
	if o := r.Header.Get("Origin"); o != "" {
		hdr.Set("Origin", o)
	} else {
		hdr.Set("Origin", (&url.URL{Scheme: u.Scheme, Host: u.Host}).String())
	}
	up, resp, err := upgrade.DialWebSocket(r.Context(), g.impersonating(x.principal), &u, hdr,
		websocket.Dialer{Subprotocols: websocket.Subprotocols(r), HandshakeTimeout: 30 * time.Second})
	if err != nil {
		if resp == nil {
			return fmt.Errorf("%w: opening the watch: %w", ErrUpstream, err)
		}
		return g.passRefusal(w, x, resp, masking)
	}
	// golang.org/x/net/websocket writes its own 101 without the
	// Content-Type the apiserver set; then the frame type tells: JSON
	// events are text, protobuf (and CBOR, which cannot be masked and
	// fails to decode as protobuf) are binary.
	ct := resp.Header.Get("Content-Type")
	if masking && ct != "" {
		if err := k8swire.CheckWatchEventType(ct); err != nil {
			up.Close()
			x.maskErr = err
			return fmt.Errorf("%w: %w", ErrMasking, err)
		}
	}
	limit := g.cfg.Masker.MaxWatchEvent()
	up.SetReadLimit(int64(limit))
	upgrader := websocket.Upgrader{
		// Clients authenticate with bearer tokens, which a browser does not
		// attach by itself: the origin is no credential here, as for the
		// apiserver, which accepts any.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	if p := up.Subprotocol(); p != "" {
		upgrader.Subprotocols = []string{p}
	}
	reply := http.Header{}
	if ct != "" {
		reply.Set("Content-Type", ct)
	}
	client, err := upgrader.Upgrade(w, r, reply)
	if err != nil {
		up.Close()
		return nil // the upgrader answered the client
	}
	g.relayWatchWebSocket(x, client, up, ct, masking)
	return nil
}

// relayWatchWebSocket copies events from the apiserver to the client until
// either side closes. The client sends nothing but control frames; its
// close ends the upstream watch.
func (g *Gateway) relayWatchWebSocket(x *exchange, client, up *websocket.Conn, ct string, masking bool) {
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			client.Close()
			up.Close()
		})
	}
	defer closeBoth()
	clientDone := make(chan struct{})
	go func() { // watch-ws-client-reader: pongs and the client's close
		defer close(clientDone)
		for {
			if _, _, err := client.NextReader(); err != nil {
				up.Close()
				return
			}
		}
	}()
	for {
		mt, msg, err := up.ReadMessage()
		if err != nil {
			code, text := websocket.CloseNormalClosure, ""
			var ce *websocket.CloseError
			switch {
			case errors.As(err, &ce):
				code, text = ce.Code, ce.Text
			case errors.Is(err, websocket.ErrReadLimit):
				x.maskErr = fmt.Errorf("%w: %w", k8swire.ErrUnmaskable, k8swire.ErrWatchEventTooLarge)
				code, text = websocket.CloseMessageTooBig, "kubegate: watch event too large (request id "+x.id+")"
			}
			writeClose(client, code, text)
			break
		}
		if masking && (mt == websocket.TextMessage || mt == websocket.BinaryMessage) {
			typ := ct
			if typ == "" {
				typ = k8swire.ContentTypeProtobuf
				if mt == websocket.TextMessage {
					typ = "application/json"
				}
			}
			out, changed, err := g.cfg.Masker.MaskWatchEvent(x.req, typ, msg)
			if err != nil {
				x.maskErr = err
				g.cfg.Log.Warn("masking a WebSocket watch event failed; the watch is closed", "request_id", x.id, "err", err)
				writeClose(client, websocket.CloseInternalServerErr, "kubegate: a watch event could not be masked, so the watch is closed (request id "+x.id+")")
				break
			}
			x.masked = x.masked || changed
			msg = out
		}
		if err := client.WriteMessage(mt, msg); err != nil {
			break
		}
	}
	closeBoth()
	<-clientDone
}

// writeClose sends a close frame, its reason cut to what a control frame
// holds.
func writeClose(c *websocket.Conn, code int, text string) {
	if code == websocket.CloseNoStatusReceived || code == websocket.CloseAbnormalClosure {
		code = websocket.CloseNormalClosure
	}
	if len(text) > 120 {
		text = text[:120]
	}
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(wsCloseWait))
}

// passRefusal answers the client with the apiserver's refusal of the
// upgrade (403, 404, ...), its body masked like any response.
func (g *Gateway) passRefusal(w http.ResponseWriter, x *exchange, resp *http.Response, masking bool) error {
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMaskedBody+1))
	if err != nil {
		return fmt.Errorf("%w: reading the refusal of the watch: %w", ErrUpstream, err)
	}
	ct := resp.Header.Get("Content-Type")
	if masking {
		out, changed, err := g.cfg.Masker.MaskBody(x.req, ct, body)
		if err != nil {
			x.maskErr = err
			return fmt.Errorf("%w: %w", ErrMasking, err)
		}
		body, x.masked = out, changed
	}
	if ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
	return nil
}
