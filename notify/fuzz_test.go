package notify

import (
	"strings"
	"testing"
)

// FuzzParseRetryAfter checks that no Retry-After value yields a negative
// or unbounded wait.
func FuzzParseRetryAfter(f *testing.F) {
	for _, tc := range retryAfterCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := parseRetryAfter(v, retryNow)
		if d < 0 || d > maxRetryAfter {
			t.Errorf("parseRetryAfter(%q) = %v", v, d)
		}
		if !ok && d != 0 {
			t.Errorf("parseRetryAfter(%q) = %v without a value", v, d)
		}
	})
}

// FuzzSlackMessage checks that whatever an event holds, the message is
// valid JSON within Block Kit's limits, escapes < and >, and keeps the
// headline section to its two lines.
func FuzzSlackMessage(f *testing.F) {
	for _, tc := range headlineCases {
		f.Add(tc.ev.Type, tc.ev.RequestID, tc.ev.Requester, tc.ev.Summary, tc.ev.Reason, tc.ev.Actor)
	}
	f.Fuzz(func(t *testing.T, typ, id, requester, summary, reason, actor string) {
		ev := Event{
			Type: typ, RequestID: id, Requester: requester, Summary: summary, Reason: reason, Actor: actor,
			Rule: reason, Node: actor, Kind: KindGrant, ApproveCommand: reason, DenyCommand: summary, ApprovalsRequired: 2,
		}
		m := slackMessage(ev)
		checkSlackLimits(t, m)
		if strings.Contains(m.Text, "\n") {
			t.Errorf("headline %q spans lines", m.Text)
		}
		if n := strings.Count(m.Blocks[0].Text.Text, "\n"); n > 1 {
			t.Errorf("headline section has %d line breaks: %q", n, m.Blocks[0].Text.Text)
		}
	})
}
