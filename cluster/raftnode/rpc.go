package raftnode

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kubegate/kubegate/cluster"
)

// Peer RPC errors.
var (
	// ErrUnknownMethod is a peer RPC method the node called has no handler
	// for, or a reserved one named in Call.
	ErrUnknownMethod = errors.New("no such peer RPC method")
	// ErrUnknownNode is a node id that is not in the cluster's
	// configuration.
	ErrUnknownNode = errors.New("no such cluster member")
)

// The peer RPC wire format. After the TLS handshake and the connRPC type
// byte, the caller sends one rpcRequest as a line of JSON and the callee
// answers with one rpcResponse as a line of JSON; then the connection is
// closed. Each message is at most maxRPCMessage bytes.
const maxRPCMessage = 32 << 20

// rpcIOTimeout bounds reading a request and writing a reply; the handler's
// own run is bounded by the caller's Timeout.
const rpcIOTimeout = 10 * time.Second

type rpcRequest struct {
	Method string `json:"method"`
	// Timeout is the time the caller waits, so that the callee's handler
	// gives up with it. Zero means no bound. A duration, not a deadline,
	// so that clock skew between nodes does not matter.
	Timeout time.Duration   `json:"timeout,omitempty"`
	Body    json.RawMessage `json:"body,omitempty"`
}

type rpcResponse struct {
	Body  json.RawMessage `json:"body,omitempty"`
	Error *wireError      `json:"error,omitempty"`
}

// serveRPC serves the one request on a peer RPC connection.
func (n *Node) serveRPC(conn *tls.Conn) {
	remote := conn.RemoteAddr().String()
	conn.SetReadDeadline(time.Now().Add(rpcIOTimeout))
	var req rpcRequest
	if err := json.NewDecoder(io.LimitReader(conn, maxRPCMessage)).Decode(&req); err != nil {
		n.cfg.Log.Warn("reading a peer RPC request", "remote", remote, "error", err)
		return
	}
	conn.SetReadDeadline(time.Time{})

	ctx, cancel := context.WithCancel(n.ctx)
	defer cancel()
	if req.Timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, req.Timeout)
		defer cancel()
	}
	// The caller sends nothing more and waits for the reply: a read that
	// returns means it hung up (or Close closed the connection), so the
	// handler's work is for nobody.
	go func() {
		var b [1]byte
		conn.Read(b[:])
		cancel()
	}()

	var resp rpcResponse
	body, err := n.dispatch(ctx, req.Method, req.Body)
	if err == nil {
		resp.Body, err = json.Marshal(body)
		if err != nil {
			err = fmt.Errorf("encoding the %s reply: %w", req.Method, err)
		}
	}
	if err != nil {
		resp.Error = encodeError(err)
	}
	conn.SetWriteDeadline(time.Now().Add(rpcIOTimeout))
	if err := json.NewEncoder(conn).Encode(resp); err != nil && ctx.Err() == nil {
		n.cfg.Log.Warn("writing a peer RPC reply", "remote", remote, "method", req.Method, "error", err)
	}
}

// dispatch runs method, one of the node's own or a Config.Handlers one.
func (n *Node) dispatch(ctx context.Context, method string, body json.RawMessage) (any, error) {
	switch method {
	case methodApply:
		return n.serveApply(ctx, body)
	case methodJoin, methodAdd:
		var req memberRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, fmt.Errorf("decoding the %s request: %w", method, err)
		}
		if method == methodJoin {
			if !n.inCluster() {
				return nil, fmt.Errorf("%w: node %s cannot add %s", ErrNoCluster, n.cfg.ID, req.ID)
			}
			// A node outside the cluster asked us: pass it on to the leader.
			return nil, n.AddVoter(ctx, req.ID, req.Address)
		}
		return nil, n.addVoterLocal(ctx, req.ID, req.Address)
	case methodRemove:
		var req memberRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, fmt.Errorf("decoding the %s request: %w", method, err)
		}
		return nil, n.removeLocal(ctx, req.ID)
	case methodSync:
		return n.serveSync(ctx)
	}
	h, ok := n.cfg.Handlers[method]
	if !ok {
		return nil, fmt.Errorf("%w %q on node %s", ErrUnknownMethod, method, n.cfg.ID)
	}
	return h(ctx, body)
}

// call sends one peer RPC to addr and decodes its reply into resp (nil:
// ignore it). An error that wraps errNotApplied left the callee untouched:
// the request was never sent.
func (n *Node) call(ctx context.Context, addr, method string, req, resp any) error {
	if n.dialer == nil {
		// Not errNotApplied: waiting for another leader would not help.
		return fmt.Errorf("calling %s on %s: %w: this node has no peer RPC (Config.Bind is empty), so only the leader can do this", method, addr, cluster.ErrNotLeader)
	}
	return n.dialer.call(ctx, addr, method, req, resp)
}

// call is Node.call with this dialer.
func (d *peerDialer) call(ctx context.Context, addr, method string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encoding the %s request: %w", method, err)
	}
	var timeout time.Duration
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	conn, err := d.dial(ctx, addr, connRPC)
	if err != nil {
		return fmt.Errorf("calling %s: %w (%w)", method, err, errNotApplied)
	}
	defer conn.Close()
	// A cancelled call closes its connection, which ends the callee's
	// handler too.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	w := bufio.NewWriter(conn)
	if err := json.NewEncoder(w).Encode(rpcRequest{Method: method, Timeout: timeout, Body: body}); err != nil {
		return fmt.Errorf("calling %s on %s: %w", method, addr, err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("calling %s on %s: %w", method, addr, orCtx(ctx, err))
	}
	var r rpcResponse
	if err := json.NewDecoder(io.LimitReader(conn, maxRPCMessage)).Decode(&r); err != nil {
		// With TLS 1.3 a peer that refuses our certificate says so here.
		return fmt.Errorf("calling %s on %s: reading the reply: %w", method, addr, orCtx(ctx, err))
	}
	if r.Error != nil {
		return fmt.Errorf("%s on %s: %w", method, addr, r.Error.decode())
	}
	if resp != nil {
		if err := json.Unmarshal(r.Body, resp); err != nil {
			return fmt.Errorf("decoding the %s reply from %s: %w", method, addr, err)
		}
	}
	return nil
}

// orCtx is ctx's error when ctx has ended (an I/O error then is its
// doing), else err.
func orCtx(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", ctxErr(ctx), err)
	}
	return err
}

// Call calls method, one of Config.Handlers, on the node nodeID (this one
// included), with req encoded as JSON, and decodes the reply into resp
// (nil: ignore it). The node's address comes from the Raft configuration.
// The call is bounded by ctx and Config.ApplyTimeout. An error the handler
// returned comes back with its message and, if it wraps one, the sentinel
// errors of package cluster and this package (for errors.Is).
func (n *Node) Call(ctx context.Context, nodeID, method string, req, resp any) error {
	if reserved(method) {
		return fmt.Errorf("%w %q: reserved for the node's own use", ErrUnknownMethod, method)
	}
	if n.closed.Load() {
		return fmt.Errorf("calling %s on %s: %w", method, nodeID, cluster.ErrClusterShutdown)
	}
	ctx, cancel := n.bound(ctx)
	defer cancel()
	servers, err := n.servers()
	if err != nil {
		return fmt.Errorf("calling %s on %s: %w", method, nodeID, err)
	}
	for _, s := range servers {
		if string(s.ID) == nodeID {
			return n.callServer(ctx, s, method, req, resp)
		}
	}
	return fmt.Errorf("calling %s on %s: %w", method, nodeID, ErrUnknownNode)
}

// callServer calls method on s, directly when s is this node.
func (n *Node) callServer(ctx context.Context, s raft.Server, method string, req, resp any) error {
	if string(s.ID) != n.cfg.ID {
		return n.call(ctx, string(s.Address), method, req, resp)
	}
	// Locally, but through JSON as for a peer, so that both behave alike.
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encoding the %s request: %w", method, err)
	}
	out, err := n.dispatch(ctx, method, body)
	if err != nil {
		return fmt.Errorf("%s on %s: %w", method, n.cfg.ID, err)
	}
	if resp == nil {
		return nil
	}
	b, err := json.Marshal(out)
	if err != nil {
		return fmt.Errorf("encoding the %s reply: %w", method, err)
	}
	return json.Unmarshal(b, resp)
}

// CallAll calls method on every member of the cluster (this node
// included) at once, as Call, and returns the replies and the errors by
// node id: each member is in exactly one of the two maps.
func (n *Node) CallAll(ctx context.Context, method string, req any) (map[string]json.RawMessage, map[string]error) {
	replies, errs := make(map[string]json.RawMessage), make(map[string]error)
	servers, err := n.servers()
	if err != nil {
		errs[n.cfg.ID] = fmt.Errorf("calling %s: %w", method, err)
		return replies, errs
	}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for _, s := range servers {
		wg.Go(func() {
			var reply json.RawMessage
			err := n.Call(ctx, string(s.ID), method, req, &reply)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[string(s.ID)] = err
			} else {
				replies[string(s.ID)] = reply
			}
		})
	}
	wg.Wait()
	return replies, errs
}

// servers is the latest Raft configuration's servers.
func (n *Node) servers() ([]raft.Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("reading the cluster configuration: %w", raftErr(err))
	}
	return f.Configuration().Servers, nil
}

// memberRequest is the body of join, add and remove.
type memberRequest struct {
	ID      string `json:"id"`
	Address string `json:"address,omitempty"`
}
