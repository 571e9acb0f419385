package policy

import (
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

func TestSessionRules(t *testing.T) {
	var cfg Config
	err := yaml.UnmarshalStrict([]byte(`
rules:
- name: bounded-exec
  resources: ["pods/exec"]
  action: allow
  session: {maxDuration: 1h, idleTimeout: 10m, onRecordingFailure: continue, captureForwards: true}
`), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := e.Decide(Input{Request: resourceRequest("create", "", "pods", "exec", "dev", "web")})
	want := SessionRules{MaxDuration: Duration(time.Hour), IdleTimeout: Duration(10 * time.Minute), OnRecordingFailure: RecordingContinue, CaptureForwards: true}
	if d.Action != Allow || d.Session != want {
		t.Errorf("decision %+v, want allow with session %+v", d, want)
	}
	for _, bad := range []string{"session: {onRecordingFailure: shrug}", "session: {maxDuration: -1s}"} {
		var c Config
		if err := yaml.UnmarshalStrict([]byte("rules:\n- name: r\n  action: allow\n  "+bad+"\n"), &c); err != nil {
			t.Fatal(err)
		}
		if _, err := New(c); err == nil || !strings.Contains(err.Error(), "session") {
			t.Errorf("%s: err = %v, want a session error", bad, err)
		}
	}
}
