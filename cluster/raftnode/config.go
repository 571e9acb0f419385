package raftnode

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kubegate/kubegate/cluster"
)

// Config configures a Node. ID, DataDir and FSM are required.
//
// A node runs in one of three modes:
//   - Bind set: a member of a cluster over mutual TLS on one peer port,
//     with forwarding to the leader and peer RPC. TLS is required.
//   - Transport set (Bind empty): Raft over the given transport, without
//     peer RPC, so no forwarding, Join or Call.
//   - neither: a single-node cluster on an in-memory transport whose
//     address is ID.
type Config struct {
	// ID is the node's id in the Raft cluster. Required.
	ID string
	// DataDir holds raft.db (log and stable store) and snapshots/. It is
	// created with mode 0700 if missing. Required.
	DataDir string
	// FSM is the state machine the node drives. It must be new (empty): the
	// node fills it from DataDir. Required.
	FSM *cluster.FSM
	// Log receives Raft's warnings and errors and the node's own. Nil means
	// slog.Default().
	Log *slog.Logger
	// SnapshotThreshold is how many log entries since the last snapshot
	// make Raft take another; as many entries are kept behind a snapshot
	// for lagging followers (one further behind is sent the snapshot).
	// Zero means 1024.
	SnapshotThreshold uint64
	// ApplyTimeout bounds Node.Apply, membership changes, Sync, Call and
	// the catch-up wait in Open (a shorter context deadline wins). Zero
	// means 10s.
	ApplyTimeout time.Duration
	// Transport connects the node to its peers when Bind is empty. Nil (and
	// Bind empty) means a single-node cluster on an in-memory transport
	// whose address is ID, with short election timeouts since there is
	// nobody to wait for. A node on a Transport has no peer RPC: Apply and
	// membership changes work on the leader only, and Join is refused.
	Transport raft.Transport

	// Bind is the address the node listens on for its peers, Raft and peer
	// RPC on one port, over TLS (e.g. "10.0.0.1:7001"; port 0 picks a free
	// port, handy in tests). Empty means no listener: see Transport.
	Bind string
	// Advertise is the address the other nodes dial to reach this one, as
	// stored in the Raft configuration. It must stay the same across
	// restarts. Empty means the address the listener is bound to, which
	// must then name a host (not "" or 0.0.0.0).
	Advertise string
	// TLS holds the node's certificate (Certificates or GetCertificate and
	// GetClientCertificate) and the cluster CA (RootCAs or ClientCAs; either
	// is used for both directions when the other is nil). Required with
	// Bind. The node uses TLS 1.3 only and both ends must present a
	// certificate issued by the cluster CA: node certificates need the
	// serverAuth and clientAuth extended key usages. The address dialled is
	// not matched against the certificate (a certificate from the cluster
	// CA is what makes a peer) unless TLS.ServerName is set, in which case
	// every peer's certificate must be valid for that name. The node never
	// changes the Config it is given; it works on clones.
	TLS *tls.Config
	// PeerNames, when not empty, narrows the peers further: the peer's
	// leaf certificate must have one of these as a DNS SAN or as its
	// subject CN, in both directions. Empty means any certificate from the
	// cluster CA.
	PeerNames []string

	// Bootstrap, for a node with no state, bootstraps a new cluster of this
	// node alone (at Advertise). It is ignored when DataDir holds state. Set
	// it on one node, once; the others Join. On a Transport it bootstraps
	// at Transport.LocalAddr(); the in-memory node always bootstraps.
	Bootstrap bool
	// Join, for a node with no state that does not Bootstrap, lists
	// members' addresses to ask, in turn and again until Open's context
	// ends, to add this node as a voter; the member asked forwards the
	// request to the leader. This node's own address may be among them
	// (it is skipped), so that every node can share one list. It is
	// ignored when DataDir holds state: a restarted node just rejoins. It
	// needs Bind.
	//
	// With neither Bootstrap nor Join and no state, Open waits for an
	// existing member to add this node (Node.AddVoter with its ID and
	// Advertise) and fails when its context ends first.
	Join []string

	// HeartbeatTimeout is how long a follower waits without hearing from
	// the leader before it calls an election; the leader sends heartbeats
	// ten times as often and steps down when it has not reached a quorum
	// for half of it. It also bounds Ready (see there). Zero means 1s (100ms
	// for the in-memory node), which suits a LAN; raise it for links with
	// high latency.
	HeartbeatTimeout time.Duration
	// ElectionTimeout is how long a candidate waits for votes before it
	// starts another election. It must be at least HeartbeatTimeout. Zero
	// means HeartbeatTimeout.
	ElectionTimeout time.Duration

	// Handlers are the peer RPC methods this node serves to Node.Call and
	// Node.CallAll from any member, by name (e.g. "sessions.list"). A
	// handler gets the caller's request as JSON and its result is sent back
	// encoded as JSON; its ctx ends when the caller gives up or the node
	// closes, and it must return then. The names apply, join, add, remove
	// and sync are reserved for the node's own use. Nil means none.
	Handlers map[string]func(ctx context.Context, req json.RawMessage) (any, error)
}

// Reserved peer RPC methods: the node's own.
const (
	methodApply  = "apply"
	methodJoin   = "join"
	methodAdd    = "add"
	methodRemove = "remove"
	methodSync   = "sync"
)

// reserved reports whether method is one of the node's own.
func reserved(method string) bool {
	switch method {
	case methodApply, methodJoin, methodAdd, methodRemove, methodSync:
		return true
	}
	return false
}

func (cfg Config) withDefaults() (Config, error) {
	switch {
	case cfg.ID == "":
		return cfg, errors.New("raftnode: Config.ID is required")
	case cfg.DataDir == "":
		return cfg, errors.New("raftnode: Config.DataDir is required")
	case cfg.FSM == nil:
		return cfg, errors.New("raftnode: Config.FSM is required")
	case cfg.ApplyTimeout < 0:
		return cfg, fmt.Errorf("raftnode: Config.ApplyTimeout %s is negative", cfg.ApplyTimeout)
	case cfg.HeartbeatTimeout < 0 || cfg.ElectionTimeout < 0:
		return cfg, errors.New("raftnode: Config.HeartbeatTimeout and ElectionTimeout must not be negative")
	case cfg.FSM.AppliedIndex() != 0 || len(cfg.FSM.Requests(cluster.Filter{})) != 0 || len(cfg.FSM.Grants("")) != 0:
		return cfg, errors.New("raftnode: Config.FSM must be empty (use cluster.NewFSM); the node fills it from its data directory")
	}
	if err := cfg.checkNetwork(); err != nil {
		return cfg, err
	}
	for name, h := range cfg.Handlers {
		switch {
		case reserved(name) || name == "":
			return cfg, fmt.Errorf("raftnode: Config.Handlers: method name %q is reserved", name)
		case h == nil:
			return cfg, fmt.Errorf("raftnode: Config.Handlers: method %q has a nil handler", name)
		}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.SnapshotThreshold == 0 {
		cfg.SnapshotThreshold = 1024
	}
	if cfg.ApplyTimeout == 0 {
		cfg.ApplyTimeout = 10 * time.Second
	}
	if cfg.HeartbeatTimeout == 0 {
		cfg.HeartbeatTimeout = time.Second
		if cfg.Bind == "" && cfg.Transport == nil {
			cfg.HeartbeatTimeout = 100 * time.Millisecond
		}
	}
	if cfg.ElectionTimeout == 0 {
		cfg.ElectionTimeout = cfg.HeartbeatTimeout
	}
	if cfg.HeartbeatTimeout < 10*time.Millisecond {
		return cfg, fmt.Errorf("raftnode: Config.HeartbeatTimeout %s is below 10ms", cfg.HeartbeatTimeout)
	}
	if cfg.ElectionTimeout < cfg.HeartbeatTimeout {
		return cfg, fmt.Errorf("raftnode: Config.ElectionTimeout %s is shorter than HeartbeatTimeout %s", cfg.ElectionTimeout, cfg.HeartbeatTimeout)
	}
	cfg.Join = slices.Clone(cfg.Join)
	cfg.PeerNames = slices.Clone(cfg.PeerNames)
	return cfg, nil
}

// checkNetwork validates the fields of the network mode.
func (cfg Config) checkNetwork() error {
	if cfg.Bind == "" {
		switch {
		case cfg.Advertise != "":
			return errors.New("raftnode: Config.Advertise is set but Bind is empty")
		case cfg.TLS != nil || len(cfg.PeerNames) > 0:
			return errors.New("raftnode: Config.TLS and PeerNames need Bind")
		case len(cfg.Join) > 0:
			return errors.New("raftnode: Config.Join needs Bind (joining uses peer RPC)")
		}
		return nil
	}
	switch {
	case cfg.Transport != nil:
		return errors.New("raftnode: Config.Bind and Transport are exclusive")
	case cfg.TLS == nil:
		return errors.New("raftnode: Config.TLS is required with Bind")
	case len(cfg.TLS.Certificates) == 0 && (cfg.TLS.GetCertificate == nil || cfg.TLS.GetClientCertificate == nil):
		return errors.New("raftnode: Config.TLS has no certificate (Certificates, or both GetCertificate and GetClientCertificate)")
	case cfg.TLS.RootCAs == nil && cfg.TLS.ClientCAs == nil:
		return errors.New("raftnode: Config.TLS has no cluster CA (RootCAs or ClientCAs)")
	}
	if _, _, err := net.SplitHostPort(cfg.Bind); err != nil {
		return fmt.Errorf("raftnode: Config.Bind %q: %w", cfg.Bind, err)
	}
	if cfg.Advertise != "" {
		if err := checkDialable(cfg.Advertise); err != nil {
			return fmt.Errorf("raftnode: Config.Advertise: %w", err)
		}
	}
	for _, a := range cfg.Join {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("raftnode: Config.Join %q: %w", a, err)
		}
	}
	return nil
}

// checkDialable returns an error unless addr is a host:port another
// machine can dial: a host that is not unspecified, and a port not 0.
func checkDialable(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("%q names no host others can dial", addr)
	}
	if port == "0" || port == "" {
		return fmt.Errorf("%q has no port", addr)
	}
	return nil
}

// raftConfig is the Raft configuration of the node cfg describes.
// commitTimeout is how long a follower may go without learning the
// leader's commit index while nothing new is logged.
const commitTimeout = 5 * time.Millisecond

func (cfg Config) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = newHCLogger(cfg.Log)
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.SnapshotThreshold
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.HeartbeatTimeout / 2
	// Followers learn that an entry committed from the leader's next
	// AppendEntries; without new entries that comes after CommitTimeout
	// (Raft's heartbeats do not carry the commit index). A held request
	// on a follower waits for that twice (the approval, then its own use
	// of it), so keep it short: idle replication every 5 ms per follower is
	// cheap next to a person waiting.
	rc.CommitTimeout = commitTimeout
	return rc
}
