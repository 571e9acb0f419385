package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// searchEvents are the events the search tests select from, one a
// minute from chainT0, named by their AuditID.
func searchEvents() []*auditv1.Event {
	ev := func(id, user, verb string, ref *auditv1.ObjectReference) *auditv1.Event {
		e := chainedEvent("n1", 1)
		e.AuditID = types.UID("e" + id)
		e.User = authnv1.UserInfo{Username: user}
		e.Verb = verb
		e.ObjectRef = ref
		return e
	}
	events := []*auditv1.Event{
		ev("1", "alice", "get", &auditv1.ObjectReference{Resource: "pods", Namespace: "dev", Name: "web"}),
		ev("2", "alice", "create", &auditv1.ObjectReference{Resource: "pods", Subresource: "exec", Namespace: "dev", Name: "web"}),
		ev("3", "bob", "delete", &auditv1.ObjectReference{Resource: "deployments", APIGroup: "apps", Namespace: "prod", Name: "api"}),
		ev("4", "bob", "patch", &auditv1.ObjectReference{Resource: "deployments", Subresource: "scale", APIGroup: "apps", Namespace: "prod", Name: "api"}),
		ev("5", "alice", "get", nil), // /version
		ev("6", "carol", "list", &auditv1.ObjectReference{Resource: "nodes"}),
	}
	for i, e := range events {
		at := metav1.NewMicroTime(chainT0.Add(time.Duration(i) * time.Minute))
		e.RequestReceivedTimestamp, e.StageTimestamp = at, at
	}
	events[5].StageTimestamp = metav1.MicroTime{} // falls back on RequestReceivedTimestamp
	return events
}

func TestSearchFilter(t *testing.T) {
	at := func(m int) time.Time { return chainT0.Add(time.Duration(m) * time.Minute) }
	for _, tc := range []struct {
		name string
		f    SearchFilter
		want []string
	}{
		{"all", SearchFilter{}, []string{"e1", "e2", "e3", "e4", "e5", "e6"}},
		{"user", SearchFilter{User: "alice"}, []string{"e1", "e2", "e5"}},
		{"verb", SearchFilter{Verb: "GET"}, []string{"e1", "e5"}},
		{"resource without subresources", SearchFilter{Resource: "pods"}, []string{"e1"}},
		{"one subresource", SearchFilter{Resource: "pods/exec"}, []string{"e2"}},
		{"any subresource", SearchFilter{Resource: "deployments/*"}, []string{"e4"}},
		{"group", SearchFilter{Resource: "deployments.apps"}, []string{"e3"}},
		{"other group", SearchFilter{Resource: "deployments.extensions"}, nil},
		{"namespace", SearchFilter{Namespace: "prod"}, []string{"e3", "e4"}},
		{"since", SearchFilter{Since: at(4)}, []string{"e5", "e6"}},
		{"until", SearchFilter{Until: at(1)}, []string{"e1"}},
		{"since and until", SearchFilter{Since: at(1), Until: at(3)}, []string{"e2", "e3"}},
		{"combined", SearchFilter{User: "bob", Verb: "patch", Namespace: "prod"}, []string{"e4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.f.Validate(); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, ev := range searchEvents() {
				if tc.f.Matches(ev) {
					got = append(got, string(ev.AuditID))
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("selected %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSearchFilterValidate(t *testing.T) {
	for _, f := range []SearchFilter{
		{Resource: "pods/"},
		{Resource: "/exec"},
		{Resource: "pods/exec/x"},
		{Since: chainT0, Until: chainT0},
	} {
		if err := f.Validate(); err == nil {
			t.Errorf("%+v: valid", f)
		}
	}
}

func TestParseSearchTime(t *testing.T) {
	now := chainT0
	for _, tc := range []struct {
		in   string
		want time.Time
		err  bool
	}{
		{"2026-11-23T08:00:00Z", chainT0.Add(-time.Hour), false},
		{"2026-11-23T10:00:00+02:00", chainT0.Add(-time.Hour), false},
		{"2h", chainT0.Add(-2 * time.Hour), false},
		{"90s", chainT0.Add(-90 * time.Second), false},
		{"-2h", time.Time{}, true},
		{"yesterday", time.Time{}, true},
	} {
		got, err := ParseSearchTime(tc.in, now)
		if (err != nil) != tc.err || !got.Equal(tc.want) {
			t.Errorf("%q: %v, %v; want %v (error %t)", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// linesSource yields fixed lines and opens no recordings.
type linesSource []Line

func (s linesSource) Lines(context.Context) iter.Seq2[Line, error] {
	return func(yield func(Line, error) bool) {
		for _, l := range s {
			if !yield(l, nil) {
				return
			}
		}
	}
}

func (linesSource) OpenRecording(context.Context, string) (io.ReadCloser, error) {
	return nil, ErrRecordingNotFound
}

func TestSearch(t *testing.T) {
	c := chainEvents(t, "n1", searchEvents()...)
	files := []verifyFile{
		{name: "events/n1/a.jsonl", lines: [][]byte{c[0], c[1], c[2], c[3]}},
		{name: "events/n1/b.jsonl", lines: [][]byte{c[2], c[3], []byte("garbage"), c[4], c[5], c[5][:20]}, incomplete: true},
	}
	src := linesSource(verifyLines(files))
	var got []string
	st, err := Search(context.Background(), src, SearchFilter{Since: chainT0.Add(time.Minute)}, func(h SearchHit) error {
		got = append(got, fmt.Sprintf("%s %s", h.Event.AuditID, h.Line.Where()))
		if LineHash(h.Line.Bytes) == "" || h.Event.Annotations[AnnotationAuditID] == "" {
			t.Errorf("hit %+v", h)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"e2 events/n1/a.jsonl:2",
		"e3 events/n1/a.jsonl:3",
		"e4 events/n1/a.jsonl:4",
		"e5 events/n1/b.jsonl:4",
		"e6 events/n1/b.jsonl:5",
	}
	if !slices.Equal(got, want) {
		t.Errorf("hits %q, want %q", got, want)
	}
	if st.Lines != 10 || st.Matched != 5 || st.Duplicates != 2 || !slices.Equal(st.Unreadable, []string{"events/n1/b.jsonl:3"}) {
		t.Errorf("stats %+v", st)
	}

	// fn's error ends the search.
	stop := errors.New("stop")
	_, err = Search(context.Background(), src, SearchFilter{}, func(SearchHit) error { return stop })
	if !errors.Is(err, stop) {
		t.Errorf("Search returned %v, want fn's error", err)
	}
	if _, err := Search(context.Background(), src, SearchFilter{Resource: "pods/"}, func(SearchHit) error { return nil }); err == nil {
		t.Error("invalid filter: no error")
	}
}
