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
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kubegate/kubegate/audit"
	"github.com/kubegate/kubegate/gateway"
)

const sessionsUsage = `usage: kubegate sessions [--user U] [--pod P] [-n NAMESPACE] [--since T] [--dir DIR | --config FILE] [--audit-file PATH]
       kubegate sessions --live [--admin URL]
       kubegate sessions kill ID [--reason TEXT] [--admin URL]

Without --live, lists the recorded exec and attach sessions. --since takes RFC3339 or a duration
back from now (2h). --dir defaults to $KUBEGATE_RECORDINGS; the gateway configuration (--config
FILE, default $KUBEGATE_CONFIG) gives it otherwise, and the audit file that holds exit codes.

--admin is the node's admin address (default $KUBEGATE_ADMIN_URL, else http://127.0.0.1:9443).
`

// runSessions lists recorded exec and attach sessions, or, through a
// node's admin endpoint, lists live sessions or kills one.
func runSessions(ctx context.Context, args []string) error {
	kill := len(args) > 0 && args[0] == "kill"
	if kill {
		args = args[1:]
	}
	fs := flag.NewFlagSet("sessions", flag.ContinueOnError)
	admin := fs.String("admin", envOr("KUBEGATE_ADMIN_URL", "http://127.0.0.1:9443"), "admin URL of a kubegate node")
	liveFlag := fs.Bool("live", false, "list live sessions from the admin endpoint instead of recordings")
	reason := fs.String("reason", "", "message shown to the session's user")
	var paths auditPaths
	paths.register(fs)
	var filter audit.RecordingFilter
	fs.StringVar(&filter.User, "user", "", "recordings of this `username`")
	fs.StringVar(&filter.Pod, "pod", "", "recordings of this `pod`")
	fs.StringVar(&filter.Namespace, "n", "", "recordings in this `namespace`")
	since := fs.String("since", "", "recordings started from this `time` on")
	pos, _, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if !kill && !*liveFlag {
		if len(pos) > 0 {
			return errors.New(sessionsUsage)
		}
		if *since != "" {
			if filter.Since, err = parseSince(*since, time.Now()); err != nil {
				return err
			}
		}
		return listRecordings(os.Stdout, os.Stderr, &paths, filter)
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
	if missing := resp.Header.Get("X-Kubegate-Unreachable-Nodes"); missing != "" {
		fmt.Fprintf(os.Stderr, "warning: nodes %s did not answer; their sessions are not listed\n", missing)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNODE\tUSER\tKIND\tPOD\tCOMMAND\tTTY\tAGE")
	for _, s := range live {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s/%s\t%s\t%t\t%s\n", s.ID, s.Node, s.User, s.Kind, s.Namespace, s.Pod,
			strings.Join(s.Command, " "), s.TTY, time.Since(s.Started).Round(time.Second))
	}
	return tw.Flush()
}

// listRecordings prints the recordings filter selects as a table, with
// exit codes from the audit file when it is known.
func listRecordings(stdout, stderr io.Writer, paths *auditPaths, filter audit.RecordingFilter) error {
	dir, err := paths.recordingsDir(true)
	if err != nil {
		return err
	}
	recs, err := audit.ListRecordings(dir, filter)
	if err != nil {
		if recs == nil {
			return err
		}
		fmt.Fprintln(stderr, "kubegate: some recordings could not be read:", err)
	}
	var codes map[string]int
	if file, ferr := paths.auditFile(); ferr == nil {
		if codes, err = audit.SessionExitCodes(file); err != nil {
			fmt.Fprintln(stderr, "kubegate: exit codes:", err)
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTART\tDURATION\tUSER\tNAMESPACE/POD\tCONTAINER\tCOMMAND\tEXIT")
	for _, r := range recs {
		exit := "-"
		if r.ExitCode == nil {
			if code, ok := codes[r.ID]; ok {
				r.ExitCode = &code
			}
		}
		switch {
		case r.ExitCode != nil:
			exit = strconv.Itoa(*r.ExitCode)
		case r.Truncated:
			exit = "truncated"
		}
		command := r.Command
		if command == "" {
			command = "(" + r.Kind + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s/%s\t%s\t%s\t%s\n", r.ID, r.Start.Format(time.RFC3339),
			r.Duration.Round(100*time.Millisecond), r.User, r.Namespace, r.Pod, r.Container, command, exit)
	}
	return tw.Flush()
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
