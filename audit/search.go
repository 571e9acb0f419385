package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// SearchFilter selects audit events. Each zero field selects all; set
// fields combine.
type SearchFilter struct {
	// User is the username of the caller (the event's user, not an
	// impersonated one).
	User string
	// Verb is the audit verb: get, list, watch, create, update, patch,
	// delete, deletecollection.
	Verb string
	// Resource is resource[.group][/subresource], matched as a policy
	// rule matches it: "pods" selects calls on pods but none of their
	// subresources, "pods/exec" one subresource, "pods/*" any subresource
	// of pods, and "deployments.apps" deployments of the apps group only.
	Resource string
	// Namespace is the object's namespace.
	Namespace string
	// Since and Until select events whose StageTimestamp (else, if it is
	// missing, RequestReceivedTimestamp) is at or after Since and before
	// Until.
	Since, Until time.Time
}

// ParseSearchTime reads a --since or --until value: RFC3339, or a
// duration back from now ("2h" is two hours ago).
func ParseSearchTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("time %q: want RFC3339 (2026-11-23T09:00:00Z) or a duration back from now (2h)", s)
	}
	return now.Add(-d), nil
}

// Validate reports a filter that can select nothing for its form.
func (f SearchFilter) Validate() error {
	if f.Resource != "" {
		res, sub, _ := f.resource()
		if res == "" || strings.Contains(sub, "/") || (strings.Contains(f.Resource, "/") && sub == "") {
			return fmt.Errorf("resource %q: want resource[.group][/subresource]", f.Resource)
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return fmt.Errorf("since %s is not before until %s", f.Since.Format(time.RFC3339), f.Until.Format(time.RFC3339))
	}
	return nil
}

// resource splits Resource into resource, subresource and group, and
// says whether it names a group.
func (f SearchFilter) resource() (res, sub string, group *string) {
	res, sub, _ = strings.Cut(f.Resource, "/")
	if r, g, ok := strings.Cut(res, "."); ok {
		return r, sub, &g
	}
	return res, sub, nil
}

// Matches reports whether f selects ev.
func (f SearchFilter) Matches(ev *auditv1.Event) bool {
	if f.User != "" && ev.User.Username != f.User {
		return false
	}
	if f.Verb != "" && !strings.EqualFold(ev.Verb, f.Verb) {
		return false
	}
	if f.Namespace != "" && (ev.ObjectRef == nil || ev.ObjectRef.Namespace != f.Namespace) {
		return false
	}
	if f.Resource != "" {
		ref := ev.ObjectRef
		if ref == nil {
			return false
		}
		res, sub, group := f.resource()
		if ref.Resource != res || (group != nil && ref.APIGroup != *group) {
			return false
		}
		switch sub {
		case "":
			if ref.Subresource != "" {
				return false
			}
		case "*":
			if ref.Subresource == "" {
				return false
			}
		default:
			if ref.Subresource != sub {
				return false
			}
		}
	}
	if !f.Since.IsZero() || !f.Until.IsZero() {
		t := EventTime(ev)
		if t.IsZero() || (!f.Since.IsZero() && t.Before(f.Since)) || (!f.Until.IsZero() && !t.Before(f.Until)) {
			return false
		}
	}
	return true
}

// EventTime is when ev happened: its StageTimestamp, else its
// RequestReceivedTimestamp.
func EventTime(ev *auditv1.Event) time.Time {
	if !ev.StageTimestamp.IsZero() {
		return ev.StageTimestamp.Time
	}
	return ev.RequestReceivedTimestamp.Time
}

// SearchHit is an event a search selected.
type SearchHit struct {
	// Line is the event's line, exactly as stored, and where.
	Line  Line
	Event *auditv1.Event
}

// SearchStats counts what a search read.
type SearchStats struct {
	// Lines is the number of lines read; Matched the events selected.
	Lines, Matched int
	// Duplicates is the number of selected events dropped as exact copies
	// of one selected before (same audit id, same bytes).
	Duplicates int
	// Unreadable lists where lines that are not events were found (an
	// incomplete last line is left out quietly).
	Unreadable []string
}

// Search calls fn with each event in src that f selects, in the order
// read, until fn returns an error, which Search returns. Exact copies of
// an event (an object-store batch retried after a crash) are passed once.
func Search(ctx context.Context, src Source, f SearchFilter, fn func(SearchHit) error) (SearchStats, error) {
	var st SearchStats
	if err := f.Validate(); err != nil {
		return st, err
	}
	// The hashes of the selected events by audit id: a batch retried
	// after a crash repeats events, and only the selected ones are kept.
	seen := map[string]string{}
	for l, err := range src.Lines(ctx) {
		if err != nil {
			return st, err
		}
		st.Lines++
		ev := new(auditv1.Event)
		if err := json.Unmarshal(l.Bytes, ev); err != nil {
			if !l.Incomplete {
				st.Unreadable = append(st.Unreadable, l.Where())
			}
			continue
		}
		if !f.Matches(ev) {
			continue
		}
		if id := ev.Annotations[AnnotationAuditID]; id != "" {
			h := LineHash(l.Bytes)
			if seen[id] == h {
				st.Duplicates++
				continue
			}
			seen[id] = h
		}
		st.Matched++
		if err := fn(SearchHit{Line: l, Event: ev}); err != nil {
			return st, err
		}
	}
	return st, nil
}
