package raftnode

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kubegate/kubegate/cluster"
)

type echoReply struct {
	Node string `json:"node"`
	Got  string `json:"got"`
}

// echoHandlers are peer RPC handlers for the node id.
func echoHandlers(id string) map[string]func(context.Context, json.RawMessage) (any, error) {
	return map[string]func(context.Context, json.RawMessage) (any, error){
		"test.echo": func(_ context.Context, req json.RawMessage) (any, error) {
			var s string
			if err := json.Unmarshal(req, &s); err != nil {
				return nil, err
			}
			return echoReply{Node: id, Got: s}, nil
		},
		"test.fail": func(context.Context, json.RawMessage) (any, error) {
			return nil, fmt.Errorf("looking on %s: %w", id, cluster.ErrNotFound)
		},
		"test.block": func(ctx context.Context, _ json.RawMessage) (any, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		},
	}
}

func TestCallAndCallAll(t *testing.T) {
	c := newTestCluster(t)
	c.mutate = func(cfg *Config) { cfg.Handlers = echoHandlers(cfg.ID) }
	nodes := c.start(3)
	n1, n2 := nodes[0], nodes[1]

	var got echoReply
	if err := n1.Call(testCtx(t), "n3", "test.echo", "hello", &got); err != nil {
		t.Fatalf("Call n3: %v", err)
	}
	if got != (echoReply{Node: "n3", Got: "hello"}) {
		t.Errorf("Call n3 = %+v", got)
	}
	if err := n1.Call(testCtx(t), "n1", "test.echo", "self", &got); err != nil || got.Node != "n1" {
		t.Errorf("Call on itself = %+v, %v", got, err)
	}

	replies, errs := n2.CallAll(testCtx(t), "test.echo", "all")
	if len(errs) != 0 || len(replies) != 3 {
		t.Fatalf("CallAll = %d replies, errors %v; want 3 replies", len(replies), errs)
	}
	for id, raw := range replies {
		var r echoReply
		if err := json.Unmarshal(raw, &r); err != nil || r != (echoReply{Node: id, Got: "all"}) {
			t.Errorf("CallAll reply from %s = %s (%v)", id, raw, err)
		}
	}

	for _, tc := range []struct {
		name, node, method string
		want               error
	}{
		{"handler error keeps its sentinel", "n2", "test.fail", cluster.ErrNotFound},
		{"handler error on itself", "n1", "test.fail", cluster.ErrNotFound},
		{"unknown method", "n3", "test.nope", ErrUnknownMethod},
		{"reserved method", "n3", methodApply, ErrUnknownMethod},
		{"unknown node", "n9", "test.echo", ErrUnknownNode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := n1.Call(testCtx(t), tc.node, tc.method, "x", nil)
			if !errors.Is(err, tc.want) {
				t.Errorf("Call(%s, %s) = %v, want %v", tc.node, tc.method, err, tc.want)
			}
		})
	}

	// A caller that gives up ends the handler on the other node.
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := n1.Call(ctx, "n2", "test.block", "x", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Call of a blocking handler = %v, want DeadlineExceeded", err)
	}
}

func TestPeerTLS(t *testing.T) {
	c := newTestCluster(t)
	c.mutate = func(cfg *Config) {
		cfg.Handlers = echoHandlers(cfg.ID)
		cfg.PeerNames = []string{"n1", "n2"}
	}
	n1 := c.start(1)[0]

	other := newCA(t, "another CA")
	imposter := c.config("n2")
	imposter.Bootstrap, imposter.TLS, imposter.PeerNames = true, other.tlsConfig(t, "n2"), nil
	evil := c.open(imposter)

	clientCfg := func(ca *testCA, name string) *tls.Config {
		_, client := peerTLS(ca.tlsConfig(t, name), nil)
		return client
	}
	noCert := clientCfg(c.ca, "n2")
	noCert.Certificates = nil
	// Trusts the cluster CA, so it gets as far as showing its certificate.
	foreign := clientCfg(c.ca, "n2")
	foreign.Certificates = other.tlsConfig(t, "n2").Certificates
	for _, tc := range []struct {
		name   string
		client *tls.Config
		addr   string
		ok     bool
	}{
		{"peer with a cluster certificate", clientCfg(c.ca, "n2"), n1.Addr(), true},
		{"client certificate from another CA", foreign, n1.Addr(), false},
		{"client that trusts another CA only", clientCfg(other, "n2"), n1.Addr(), false},
		{"cluster certificate for a name not in PeerNames", clientCfg(c.ca, "n9"), n1.Addr(), false},
		{"no client certificate", noCert, n1.Addr(), false},
		{"server with a certificate from another CA", clientCfg(c.ca, "n2"), evil.Addr(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &peerDialer{tls: tc.client, conns: &connSet{}}
			var got echoReply
			err := d.call(testCtx(t), tc.addr, "test.echo", "hi", &got)
			if tc.ok && (err != nil || got.Got != "hi") {
				t.Fatalf("call = %+v, %v; want it to work", got, err)
			}
			if !tc.ok && err == nil {
				t.Fatalf("call = %+v; want a TLS failure", got)
			}
			t.Logf("call: %v", err)
		})
	}
}

func TestForeignNodeCannotJoin(t *testing.T) {
	c := newTestCluster(t)
	n1 := c.start(1)[0]

	other := newCA(t, "another CA")
	cfg := c.config("intruder")
	cfg.Join, cfg.TLS = []string{n1.Addr()}, other.tlsConfig(t, "intruder")
	// It even trusts the cluster's CA: n1 must refuse its certificate.
	cfg.TLS.RootCAs = c.ca.pool
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	n, err := Open(ctx, cfg)
	if err == nil {
		n.Close()
		t.Fatal("a node with a certificate from another CA joined")
	}
	t.Logf("Open: %v", err)
	ms, err := n1.Members()
	if err != nil || len(ms) != 1 {
		t.Errorf("Members after the attempt = %+v, %v; want n1 alone", ms, err)
	}
}
