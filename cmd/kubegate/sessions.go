package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kubegate/kubegate/gateway"
)

const sessionsUsage = `usage: kubegate sessions [--live] [--admin URL]
       kubegate sessions kill ID [--reason TEXT] [--admin URL]

--admin is the node's admin address (default $KUBEGATE_ADMIN_URL, else http://127.0.0.1:9443).
`

// runSessions lists live exec, attach and port-forward sessions, or kills
// one, through a node's admin endpoint.
func runSessions(ctx context.Context, args []string) error {
	kill := len(args) > 0 && args[0] == "kill"
	if kill {
		args = args[1:]
	}
	fs := flag.NewFlagSet("sessions", flag.ContinueOnError)
	admin := fs.String("admin", envOr("KUBEGATE_ADMIN_URL", "http://127.0.0.1:9443"), "admin URL of a kubegate node")
	_ = fs.Bool("live", true, "list live sessions (recorded sessions are files under the recordings directory)")
	reason := fs.String("reason", "", "message shown to the session's user")
	pos, _, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 10 * time.Second}
	base := strings.TrimRight(*admin, "/")
	if kill {
		if len(pos) != 1 {
			return errors.New(sessionsUsage)
		}
		u := base + "/sessions/" + url.PathEscape(pos[0]) + "/kill"
		if *reason != "" {
			u += "?reason=" + url.QueryEscape(*reason)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("reaching %s: %w", base, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("kill %s: %s: %s", pos[0], resp.Status, strings.TrimSpace(string(body)))
		}
		fmt.Printf("session %s killed\n", pos[0])
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/sessions", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("reaching %s: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("listing sessions: %s", resp.Status)
	}
	var live []gateway.LiveSession
	if err := json.NewDecoder(resp.Body).Decode(&live); err != nil {
		return fmt.Errorf("decoding sessions: %w", err)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tKIND\tPOD\tCOMMAND\tTTY\tAGE")
	for _, s := range live {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s/%s\t%s\t%t\t%s\n", s.ID, s.User, s.Kind, s.Namespace, s.Pod,
			strings.Join(s.Command, " "), s.TTY, time.Since(s.Started).Round(time.Second))
	}
	return tw.Flush()
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
