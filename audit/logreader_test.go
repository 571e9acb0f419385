package audit

import (
	"errors"
	"io"
	"path/filepath"
	"sync"
	"testing"
)

// TestLogReaderFollowsRotation reads while a sink writes and rotates every
// few events: every event comes once, in order. (Each round races the
// reader's listing of the files against the sink's renames.)
func TestLogReaderFollowsRotation(t *testing.T) {
	for round := range 30 {
		path := filepath.Join(t.TempDir(), "audit.log")
		s, err := NewFileSink(FileConfig{Path: path, Node: "n1", MaxSizeBytes: 2000})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() { writeN(t, s, 60, "a") })
		r := logReader{path: path}
		var got []uint64
		for len(got) < 60 {
			l, err := r.next()
			if errors.Is(err, io.EOF) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) > 0 && l.seq != got[len(got)-1]+1 {
				t.Fatalf("round %d: after event %d came %d", round, got[len(got)-1], l.seq)
			}
			got = append(got, l.seq)
		}
		wg.Wait()
		s.Close()
		r.close()
	}
}
