package notify

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// slackWire is what a Slack-compatible receiver decodes, declared apart
// from the package's own types so the test checks the wire shape.
type slackWire struct {
	Text   string `json:"text"`
	Blocks []struct {
		Type string `json:"type"`
		Text *struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"text"`
		Fields []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"fields"`
		Elements []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"elements"`
	} `json:"blocks"`
}

// texts lists every text object in the message, checking each is mrkdwn.
func (m slackWire) texts(t *testing.T) []string {
	t.Helper()
	var out []string
	check := func(typ, text string) {
		if typ != "mrkdwn" {
			t.Errorf("text object type %q, want mrkdwn", typ)
		}
		out = append(out, text)
	}
	for _, b := range m.Blocks {
		if b.Type != "section" && b.Type != "context" {
			t.Errorf("block type %q", b.Type)
		}
		if b.Text != nil {
			check(b.Text.Type, b.Text.Text)
		}
		for _, f := range b.Fields {
			check(f.Type, f.Text)
		}
		for _, e := range b.Elements {
			check(e.Type, e.Text)
		}
	}
	return out
}

func TestSlackPayloadOverHTTPS(t *testing.T) {
	rc := newReceiver(t, true, nil)
	w, _ := newTestWebhook(t, WebhookConfig{
		URL: rc.srv.URL + "/services/T0/B0/x", Format: FormatSlack, Client: rc.srv.Client(),
		Headers: map[string]string{"Authorization": "Bearer HEADERSECRET"},
	})
	created := testEvent("1234")
	approved := Event{
		Type: TypeRequestApproved, Time: created.Time, RequestID: "1234", Kind: KindHold,
		Requester: created.Requester, Summary: created.Summary, Actor: "alice", Reason: "looks fine",
		Approvals: 2, ApprovalsRequired: 2,
	}
	w.Notify(created)
	w.Notify(approved)
	deliverQueued(t, w)
	wantStats(t, w, Stats{Delivered: 2})
	got := rc.drained()
	if len(got) != 2 {
		t.Fatalf("receiver got %d messages", len(got))
	}
	for _, r := range got {
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		if strings.Contains(string(r.body), "HEADERSECRET") {
			t.Errorf("body carries a header value: %s", r.body)
		}
	}

	var m slackWire
	if err := json.Unmarshal(got[0].body, &m); err != nil {
		t.Fatalf("decoding %s: %v", got[0].body, err)
	}
	if want := "kubegate: *system:serviceaccount:agents:agent* asks to delete deployments/web in namespace prod"; m.Text != want {
		t.Errorf("text = %q, want %q", m.Text, want)
	}
	all := strings.Join(m.texts(t), "\n")
	for _, want := range []string{
		"`kubegate approve 1234 --reason ...`", "`kubegate deny 1234 --reason ...`",
		"*Request*\n`1234` (hold)", "*Requester*\nsystem:serviceaccount:agents:agent",
		"*Rule*\nprod-deletes-need-approval", "*Expires*\n2026-07-01 12:45:00 UTC",
		"*Approvals*\n0 of 2", "Reason: rolling back a broken release",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("message lacks %q:\n%s", want, all)
		}
	}

	m = slackWire{}
	if err := json.Unmarshal(got[1].body, &m); err != nil {
		t.Fatal(err)
	}
	if want := "kubegate: request `1234` approved by *alice*: looks fine"; m.Text != want {
		t.Errorf("text = %q, want %q", m.Text, want)
	}
	if all := strings.Join(m.texts(t), "\n"); strings.Contains(all, "kubegate approve") {
		t.Errorf("a decision carries the approve command:\n%s", all)
	}
}

var headlineCases = []struct {
	name string
	ev   Event
	want string
}{
	{"created", Event{Type: TypeRequestCreated, Requester: "agent", Summary: "exec into pods/toolbox -c main in prod: sh (tty, stdin)"},
		"kubegate: *agent* asks to exec into pods/toolbox -c main in prod: sh (tty, stdin)"},
	{"grant", Event{Type: TypeRequestCreated, Kind: KindGrant, Requester: "agent", Summary: "grant of delete on deployments in namespaces prod for 30m"},
		"kubegate: *agent* asks for grant of delete on deployments in namespaces prod for 30m"},
	{"created without summary", Event{Type: TypeRequestCreated, RequestID: "9"}, "kubegate: new request `9` from someone"},
	{"approved", Event{Type: TypeRequestApproved, RequestID: "1", Actor: "alice", Reason: "ok"}, "kubegate: request `1` approved by *alice*: ok"},
	{"approved, no reason", Event{Type: TypeRequestApproved, RequestID: "1", Actor: "alice"}, "kubegate: request `1` approved by *alice*"},
	{"one of two", Event{Type: TypeApprovalAdded, RequestID: "1", Actor: "bob", Approvals: 1, ApprovalsRequired: 2},
		"kubegate: request `1` approved by *bob* (1 of 2 approvals)"},
	{"denied", Event{Type: TypeRequestDenied, RequestID: "1", Actor: "carol", Reason: "not during the freeze"},
		"kubegate: request `1` denied by *carol*: not during the freeze"},
	{"expired", Event{Type: TypeRequestExpired, RequestID: "1"}, "kubegate: request `1` expired"},
	{"revoked", Event{Type: TypeGrantRevoked, RequestID: "g7", Actor: "dave"}, "kubegate: grant `g7` revoked by *dave*"},
	{"unknown type", Event{Type: "request.poked", RequestID: "1"}, "kubegate: request `1`: request.poked"},
	{"mentions and links escaped", Event{Type: TypeRequestCreated, Requester: "<!channel>", Summary: "read <https://evil.example|the docs> & more"},
		"kubegate: *&lt;!channel&gt;* asks to read &lt;https://evil.example|the docs&gt; &amp; more"},
	{"no fake lines", Event{Type: TypeRequestDenied, RequestID: "1`x", Actor: "eve", Reason: "no\nkubegate: request approved by *admin*\u202e"},
		"kubegate: request `1'x` denied by *eve*: no kubegate: request approved by *admin*"},
}

func TestSlackHeadline(t *testing.T) {
	for _, tc := range headlineCases {
		t.Run(tc.name, func(t *testing.T) {
			if got := slackHeadline(tc.ev); got != tc.want {
				t.Errorf("headline = %q\nwant       %q", got, tc.want)
			}
		})
	}
}

func TestSlackEscapeLimits(t *testing.T) {
	for _, tc := range []struct {
		in    string
		limit int
		code  bool
		want  string
	}{
		{"short", 10, false, "short"},
		{"exactly10!", 10, false, "exactly10!"},
		{"eleven char", 10, false, "eleven ch…"},
		{"a&b", 5, false, "a…"}, // an entity is never cut in half
		{"a&b", 7, false, "a&amp;b"},
		{"tab\there", 20, true, "tab here"},
		{"x`y", 5, true, "x'y"},
		{"x`y", 5, false, "x`y"},
		{"\xff", 5, false, "\uFFFD"},
		{"ab", 1, false, "…"},
	} {
		got := slackEscape(tc.in, tc.limit, tc.code)
		if got != tc.want {
			t.Errorf("slackEscape(%q, %d, %v) = %q, want %q", tc.in, tc.limit, tc.code, got, tc.want)
		}
		if n := utf8.RuneCountInString(got); n > tc.limit {
			t.Errorf("slackEscape(%q, %d) is %d characters", tc.in, tc.limit, n)
		}
	}
}

func TestSlackLongEventStaysWithinLimits(t *testing.T) {
	long := strings.Repeat("<&>", 5000)
	ev := Event{
		Type: TypeRequestCreated, RequestID: long, Kind: long, Requester: long, Summary: long, Rule: long,
		Reason: long, Actor: long, Node: long, ApproveCommand: long, DenyCommand: long, ApprovalsRequired: 3,
	}
	for _, typ := range []string{TypeRequestCreated, TypeApprovalAdded, "other"} {
		ev.Type = typ
		checkSlackLimits(t, slackMessage(ev))
	}
}

// checkSlackLimits checks the Block Kit limits the message must respect.
func checkSlackLimits(t *testing.T, m slackPayload) {
	t.Helper()
	body, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var w slackWire
	if err := json.Unmarshal(body, &w); err != nil {
		t.Fatal(err)
	}
	if w.Text == "" || len(w.Blocks) == 0 || len(w.Blocks) > 50 {
		t.Errorf("text %q, %d blocks", w.Text, len(w.Blocks))
	}
	for _, b := range w.Blocks {
		if b.Text != nil && utf8.RuneCountInString(b.Text.Text) > 3000 {
			t.Errorf("section text of %d characters", utf8.RuneCountInString(b.Text.Text))
		}
		if len(b.Fields) > 10 {
			t.Errorf("%d fields", len(b.Fields))
		}
		for _, f := range b.Fields {
			if utf8.RuneCountInString(f.Text) > 2000 {
				t.Errorf("field of %d characters", utf8.RuneCountInString(f.Text))
			}
		}
	}
	for _, s := range w.texts(t) {
		if strings.ContainsAny(s, "<>") {
			t.Errorf("unescaped < or > in %q", s)
		}
	}
}
