package testkubelet

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
)

// ServeLogs writes the container's log, following it while the request
// lasts when follow is set.
func (r *Runtime) ServeLogs(ctx context.Context, w http.ResponseWriter, pod, container string, follow bool) {
	c, err := r.container(pod, container)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	if !follow {
		b, err := os.ReadFile(filepath.Join(c.dir, "container.log"))
		if err != nil && !os.IsNotExist(err) {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(b)
		return
	}
	ch, history := c.subscribe(true)
	defer c.unsubscribe(ch)
	flusher, _ := w.(http.Flusher)
	write := func(b []byte) bool {
		if _, err := w.Write(b); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	if !write(history) {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-ch:
			if !write(b) {
				return
			}
		}
	}
}
