package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
)

const clusterUsage = `usage: kubegate cluster status [--admin URL]
       kubegate cluster add ID ADDRESS [--admin URL]
       kubegate cluster remove ID [--admin URL]

Shows and changes the Raft membership through any node's admin address (default
$KUBEGATE_ADMIN_URL, else http://127.0.0.1:9443); changes are forwarded to the leader.
A new node starts with --join instead: 'add' is for a node started without it.
`

// clusterView is what GET /cluster answers; the fields the CLI prints.
type clusterView struct {
	Node   string `json:"node"`
	Leader string `json:"leader"`
	Ready  string `json:"ready"`
	Stats  struct {
		State        string `json:"State"`
		Term         uint64 `json:"Term"`
		CommitIndex  uint64 `json:"CommitIndex"`
		AppliedIndex uint64 `json:"AppliedIndex"`
	} `json:"stats"`
	Members []struct {
		ID       string `json:"ID"`
		Address  string `json:"Address"`
		Suffrage string `json:"Suffrage"`
		Leader   bool   `json:"Leader"`
	} `json:"members"`
	Error string `json:"error"`
}

// runCluster shows or changes cluster membership.
func runCluster(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(clusterUsage)
	}
	verb := args[0]
	fs := flag.NewFlagSet("cluster "+verb, flag.ContinueOnError)
	admin := fs.String("admin", envOr("KUBEGATE_ADMIN_URL", "http://127.0.0.1:9443"), "admin URL of any kubegate node")
	pos, _, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return err
	}
	base := strings.TrimRight(*admin, "/")
	client := &http.Client{Timeout: 30 * time.Second}
	do := func(method, path string, body any) ([]byte, error) {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("reaching %s: %w", base, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if resp.StatusCode >= 300 {
			return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
		}
		return b, nil
	}
	switch {
	case verb == "status" && len(pos) == 0:
		b, err := do(http.MethodGet, "/cluster", nil)
		if err != nil {
			return err
		}
		var v clusterView
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("decoding /cluster: %w", err)
		}
		fmt.Fprintf(stdout, "node %s: %s, term %d, commit index %d, applied %d, ready: %s\n",
			v.Node, v.Stats.State, v.Stats.Term, v.Stats.CommitIndex, v.Stats.AppliedIndex, v.Ready)
		if v.Error != "" {
			fmt.Fprintf(stdout, "members unknown: %s\n", v.Error)
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tADDRESS\tSUFFRAGE\tLEADER")
		for _, m := range v.Members {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%t\n", m.ID, m.Address, m.Suffrage, m.Leader)
		}
		return tw.Flush()
	case verb == "add" && len(pos) == 2:
		if _, err := do(http.MethodPost, "/cluster/members", map[string]string{"id": pos[0], "address": pos[1]}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "node %s (%s) added as a voter\n", pos[0], pos[1])
		return nil
	case verb == "remove" && len(pos) == 1:
		if _, err := do(http.MethodDelete, "/cluster/members/"+url.PathEscape(pos[0]), nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "node %s removed\n", pos[0])
		return nil
	}
	return errors.New(clusterUsage)
}
