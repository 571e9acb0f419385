package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/kubegate/kubegate/cluster"
	"github.com/kubegate/kubegate/cluster/raftnode"
	"github.com/kubegate/kubegate/gateway"
	"github.com/prometheus/client_golang/prometheus"
)

// Peer RPC methods this node serves to the others.
const (
	methodSessionsList = "sessions.list"
	methodSessionsKill = "sessions.kill"
)

// openCluster opens this node's share of the approval state: alone, or as
// a member of a cluster over mutual TLS. gw is filled in once the gateway
// exists; peers' session calls wait for nothing and see no sessions before.
func openCluster(cfg ClusterConfig, gw **gateway.Gateway, log *slog.Logger) (*raftnode.Node, error) {
	rc := raftnode.Config{
		ID: cfg.NodeID, DataDir: cfg.DataDir, FSM: cluster.NewFSM(), Log: log.With("component", "raft"),
		Bind: cfg.Bind, Advertise: cfg.Advertise, Join: cfg.Join,
		Bootstrap: cfg.Bootstrap || (cfg.BootstrapNodeID != "" && cfg.BootstrapNodeID == cfg.NodeID),
		Handlers:  sessionHandlers(gw),
	}
	if cfg.Bind == "" {
		rc.Bootstrap = false // a lone node bootstraps itself
	} else {
		tc, err := peerTLS(cfg.TLS)
		if err != nil {
			return nil, err
		}
		rc.TLS = tc
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return raftnode.Open(ctx, rc)
}

// peerTLS is the mutual-TLS configuration of the peer port: this node's
// certificate, and the cluster CA for both directions.
func peerTLS(c PeerTLSConfig) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("cluster.tls: %w", err)
	}
	caPEM, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("cluster.tls.caFile: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("cluster.tls.caFile %s: no PEM certificate", c.CAFile)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}, nil
}

// killRequest is the body of a sessions.kill call.
type killRequest struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// sessionHandlers serve this node's live sessions to its peers.
func sessionHandlers(gw **gateway.Gateway) map[string]func(context.Context, json.RawMessage) (any, error) {
	return map[string]func(context.Context, json.RawMessage) (any, error){
		methodSessionsList: func(context.Context, json.RawMessage) (any, error) {
			if *gw == nil {
				return []gateway.LiveSession{}, nil
			}
			return (*gw).Sessions().List(), nil
		},
		methodSessionsKill: func(_ context.Context, req json.RawMessage) (any, error) {
			var k killRequest
			if err := json.Unmarshal(req, &k); err != nil {
				return nil, err
			}
			return *gw != nil && (*gw).Sessions().Kill(k.ID, k.Reason), nil
		},
	}
}

// clusterSessions lists and kills live sessions on every node of the
// cluster, for the admin endpoint.
type clusterSessions struct {
	node *raftnode.Node
	gw   *gateway.Gateway
	log  *slog.Logger
}

// list returns every node's live sessions, oldest first, and the nodes
// that did not answer.
func (c clusterSessions) list(ctx context.Context) ([]gateway.LiveSession, []string) {
	all := c.gw.Sessions().List()
	replies, errs := c.node.CallAll(ctx, methodSessionsList, struct{}{})
	for id, raw := range replies {
		if id == c.node.ID() {
			continue
		}
		var ls []gateway.LiveSession
		if err := json.Unmarshal(raw, &ls); err != nil {
			errs[id] = err
			continue
		}
		all = append(all, ls...)
	}
	var missing []string
	for id, err := range errs {
		if id != c.node.ID() {
			c.log.Warn("listing a peer's sessions", "peer", id, "err", err)
			missing = append(missing, id)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Started.Before(all[j].Started) })
	sort.Strings(missing)
	return all, missing
}

// kill ends a session on whichever node carries it.
func (c clusterSessions) kill(ctx context.Context, id, reason string) (bool, error) {
	if c.gw.Sessions().Kill(id, reason) {
		return true, nil
	}
	replies, errs := c.node.CallAll(ctx, methodSessionsKill, killRequest{ID: id, Reason: reason})
	for _, raw := range replies {
		var killed bool
		if json.Unmarshal(raw, &killed) == nil && killed {
			return true, nil
		}
	}
	if len(errs) > 0 {
		var msgs []string
		for peer, err := range errs {
			msgs = append(msgs, peer+": "+err.Error())
		}
		sort.Strings(msgs)
		return false, fmt.Errorf("not found on the nodes that answered; unreachable: %s", strings.Join(msgs, "; "))
	}
	return false, nil
}

// handler serves GET /sessions and POST /sessions/{id}/kill across the
// cluster.
func (c clusterSessions) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sessions", func(w http.ResponseWriter, r *http.Request) {
		all, missing := c.list(r.Context())
		if len(missing) > 0 {
			w.Header().Set("X-Kubegate-Unreachable-Nodes", strings.Join(missing, ","))
		}
		writeJSON(w, http.StatusOK, all)
	})
	mux.HandleFunc("POST /sessions/{id}/kill", func(w http.ResponseWriter, r *http.Request) {
		reason := r.URL.Query().Get("reason")
		if reason == "" {
			reason = "killed by an operator"
		}
		ok, err := c.kill(r.Context(), r.PathValue("id"), reason)
		switch {
		case ok:
			_, _ = w.Write([]byte("killed\n"))
		case err != nil:
			http.Error(w, "no live session "+r.PathValue("id")+": "+err.Error(), http.StatusBadGateway)
		default:
			http.Error(w, "no live session "+r.PathValue("id"), http.StatusNotFound)
		}
	})
	return mux
}

// memberRequest is the body of POST /cluster/members.
type memberRequest struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}

// clusterStatus is GET /cluster.
type clusterStatus struct {
	Node    string            `json:"node"`
	Leader  string            `json:"leader"`
	Ready   string            `json:"ready"`
	Stats   raftnode.Stats    `json:"stats"`
	Members []raftnode.Member `json:"members"`
	Error   string            `json:"error,omitempty"`
}

// clusterHandler serves membership: GET /cluster, POST /cluster/members,
// DELETE /cluster/members/{id}. Changes are forwarded to the leader.
func clusterHandler(node *raftnode.Node) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /cluster", func(w http.ResponseWriter, r *http.Request) {
		st := clusterStatus{Node: node.ID(), Stats: node.Stats(), Ready: "ok"}
		st.Leader, _ = node.Leader()
		if err := node.Ready(); err != nil {
			st.Ready = err.Error()
		}
		var err error
		if st.Members, err = node.Members(); err != nil {
			st.Error = err.Error()
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("POST /cluster/members", func(w http.ResponseWriter, r *http.Request) {
		var m memberRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&m); err != nil || m.ID == "" || m.Address == "" {
			http.Error(w, "want {\"id\": ..., \"address\": ...}", http.StatusBadRequest)
			return
		}
		if err := node.AddVoter(r.Context(), m.ID, m.Address); err != nil {
			http.Error(w, err.Error(), clusterErrorCode(err))
			return
		}
		_, _ = w.Write([]byte("added\n"))
	})
	mux.HandleFunc("DELETE /cluster/members/{id}", func(w http.ResponseWriter, r *http.Request) {
		if err := node.RemoveServer(r.Context(), r.PathValue("id")); err != nil {
			http.Error(w, err.Error(), clusterErrorCode(err))
			return
		}
		_, _ = w.Write([]byte("removed\n"))
	})
	return mux
}

func clusterErrorCode(err error) int {
	if errors.Is(err, cluster.ErrNotLeader) {
		return http.StatusServiceUnavailable
	}
	return http.StatusBadGateway
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// raftCollector exports the node's Raft state as metrics.
type raftCollector struct {
	node                                    *raftnode.Node
	leader, commit, applied, lastIdx, terms *prometheus.Desc
}

func newRaftCollector(node *raftnode.Node) *raftCollector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &raftCollector{
		node:    node,
		leader:  d("kubegate_raft_leader", "1 if this node is the Raft leader."),
		commit:  d("kubegate_raft_commit_index", "The Raft commit index this node knows."),
		applied: d("kubegate_raft_applied_index", "The last Raft index this node applied."),
		lastIdx: d("kubegate_raft_last_index", "The last Raft index in this node's log."),
		terms:   d("kubegate_raft_term", "This node's current Raft term."),
	}
}

func (c *raftCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.leader, c.commit, c.applied, c.lastIdx, c.terms} {
		ch <- d
	}
}

func (c *raftCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.node.Stats()
	leader := 0.0
	if st.State == "Leader" {
		leader = 1
	}
	ch <- prometheus.MustNewConstMetric(c.leader, prometheus.GaugeValue, leader)
	ch <- prometheus.MustNewConstMetric(c.commit, prometheus.GaugeValue, float64(st.CommitIndex))
	ch <- prometheus.MustNewConstMetric(c.applied, prometheus.GaugeValue, float64(st.AppliedIndex))
	ch <- prometheus.MustNewConstMetric(c.lastIdx, prometheus.GaugeValue, float64(st.LastIndex))
	ch <- prometheus.MustNewConstMetric(c.terms, prometheus.GaugeValue, float64(st.Term))
}

// timedApprovals measures how long each command takes to commit and
// apply.
type timedApprovals struct {
	*raftnode.Node
	latency *prometheus.HistogramVec
}

func newTimedApprovals(n *raftnode.Node, reg prometheus.Registerer) timedApprovals {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "kubegate_raft_apply_seconds", Help: "Time to commit and apply an approval-state command, by operation.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"op"})
	reg.MustRegister(h)
	return timedApprovals{Node: n, latency: h}
}

func (t timedApprovals) Apply(ctx context.Context, c cluster.Command) (cluster.Result, error) {
	start := time.Now()
	res, err := t.Node.Apply(ctx, c)
	t.latency.WithLabelValues(string(c.Op)).Observe(time.Since(start).Seconds())
	return res, err
}
