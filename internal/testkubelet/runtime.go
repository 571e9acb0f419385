package testkubelet

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/creack/pty"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// attachLinger is how long an attach keeps forwarding output after the
// client's stdin has ended.
const attachLinger = 500 * time.Millisecond

// Runtime runs the containers of the Pods bound to this kubelet as local
// processes. The zero value is not usable; call NewRuntime.
type Runtime struct {
	root string
	log  *slog.Logger

	mu   sync.Mutex
	pods map[string]*podRun // by pod name ("ns/name" is not needed: the streaming server passes namespace/name as one)
}

type podRun struct {
	uid        string
	cancel     context.CancelFunc
	containers map[string]*containerRun
}

// containerRun is one container: its directory, environment and, when its
// spec has a command, a long-lived main process that attach connects to.
type containerRun struct {
	name string
	dir  string
	env  []string
	spec corev1.Container

	mu      sync.Mutex
	stdin   io.Writer // the main process's stdin, nil when spec.Stdin is false or no process runs
	tty     *os.File  // the main process's pty, when spec.TTY
	logFile *os.File
	subs    map[chan []byte]struct{}
}

// NewRuntime returns a Runtime keeping per-container directories and logs
// under root.
func NewRuntime(root string, log *slog.Logger) *Runtime {
	return &Runtime{root: root, log: log, pods: map[string]*podRun{}}
}

func podKey(namespace, name string) string { return namespace + "/" + name }

// container finds a running container by the pod name the streaming server
// hands over ("namespace/name") and container name.
func (r *Runtime) container(pod, container string) (*containerRun, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.pods[pod]
	if !ok {
		return nil, fmt.Errorf("pod %q is not running on this node", pod)
	}
	if container == "" && len(p.containers) == 1 {
		for _, c := range p.containers {
			return c, nil
		}
	}
	c, ok := p.containers[container]
	if !ok {
		return nil, fmt.Errorf("container %q not found in pod %q", container, pod)
	}
	return c, nil
}

// Running reports whether the pod is started with the given uid.
func (r *Runtime) Running(namespace, name, uid string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.pods[podKey(namespace, name)]
	return ok && p.uid == uid
}

// StartPod starts the pod's containers. Containers with a command get a main
// process that is restarted when it exits, until StopPod.
func (r *Runtime) StartPod(pod *corev1.Pod) error {
	key := podKey(pod.Namespace, pod.Name)
	ctx, cancel := context.WithCancel(context.Background())
	p := &podRun{uid: string(pod.UID), cancel: cancel, containers: map[string]*containerRun{}}
	for _, spec := range pod.Spec.Containers {
		dir := filepath.Join(r.root, pod.Namespace, pod.Name, spec.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			cancel()
			return fmt.Errorf("creating container directory: %w", err)
		}
		logFile, err := os.OpenFile(filepath.Join(dir, "container.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			cancel()
			return fmt.Errorf("opening container log: %w", err)
		}
		c := &containerRun{name: spec.Name, dir: dir, env: containerEnv(dir, spec), spec: spec, logFile: logFile, subs: map[chan []byte]struct{}{}}
		if spec.WorkingDir != "" {
			c.dir = spec.WorkingDir
		}
		p.containers[spec.Name] = c
		if len(spec.Command) > 0 {
			go r.superviseMain(ctx, key, c)
		}
	}
	r.mu.Lock()
	old := r.pods[key]
	r.pods[key] = p
	r.mu.Unlock()
	if old != nil {
		old.cancel()
	}
	return nil
}

// StopPod stops the pod's processes.
func (r *Runtime) StopPod(namespace, name string) {
	r.mu.Lock()
	p := r.pods[podKey(namespace, name)]
	delete(r.pods, podKey(namespace, name))
	r.mu.Unlock()
	if p != nil {
		p.cancel()
	}
}

// StopAll stops every pod.
func (r *Runtime) StopAll() {
	r.mu.Lock()
	pods := r.pods
	r.pods = map[string]*podRun{}
	r.mu.Unlock()
	for _, p := range pods {
		p.cancel()
	}
}

func containerEnv(dir string, spec corev1.Container) []string {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + dir, "TERM=xterm"}
	for _, e := range spec.Env {
		if e.ValueFrom == nil {
			env = append(env, e.Name+"="+e.Value)
		}
	}
	return env
}

// superviseMain runs the container's main process, restarting it after it
// exits, until ctx ends.
func (r *Runtime) superviseMain(ctx context.Context, pod string, c *containerRun) {
	for ctx.Err() == nil {
		err := c.runMain(ctx)
		r.log.Debug("container main process exited", "pod", pod, "container", c.name, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	c.logFile.Close()
}

func (c *containerRun) runMain(ctx context.Context) error {
	args := append(append([]string{}, c.spec.Command...), c.spec.Args...)
	proc := exec.CommandContext(ctx, args[0], args[1:]...)
	proc.Dir = c.dir
	proc.Env = c.env
	proc.WaitDelay = waitDelay
	out := &broadcastWriter{c: c}
	if c.spec.TTY {
		f, err := pty.Start(proc)
		if err != nil {
			return err
		}
		defer f.Close()
		c.setStdin(f, f)
		defer c.setStdin(nil, nil)
		go func() { _, _ = io.Copy(out, f) }()
		return proc.Wait()
	}
	proc.Stdout, proc.Stderr = out, out
	var stdin io.WriteCloser
	if c.spec.Stdin {
		p, err := proc.StdinPipe()
		if err != nil {
			return err
		}
		stdin = p
	}
	if err := proc.Start(); err != nil {
		return err
	}
	if stdin != nil {
		c.setStdin(stdin, nil)
		defer c.setStdin(nil, nil)
	}
	return proc.Wait()
}

func (c *containerRun) setStdin(w io.Writer, tty *os.File) {
	c.mu.Lock()
	c.stdin, c.tty = w, tty
	c.mu.Unlock()
}

// broadcastWriter appends the main process's output to the container log and
// hands a copy to every attached client.
type broadcastWriter struct{ c *containerRun }

func (b *broadcastWriter) Write(p []byte) (int, error) {
	c := b.c
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = c.logFile.Write(p)
	for ch := range c.subs {
		buf := append([]byte(nil), p...)
		select {
		case ch <- buf:
		default: // a subscriber that cannot keep up loses output rather than stalling the container
		}
	}
	return len(p), nil
}

// subscribe registers a receiver of the main process's output. With
// withHistory, it first returns the log written so far, read under the same
// lock so nothing is lost or doubled between the two.
func (c *containerRun) subscribe(withHistory bool) (chan []byte, []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var history []byte
	if withHistory {
		history, _ = os.ReadFile(c.logFile.Name())
	}
	ch := make(chan []byte, 256)
	c.subs[ch] = struct{}{}
	return ch, history
}

func (c *containerRun) unsubscribe(ch chan []byte) {
	c.mu.Lock()
	delete(c.subs, ch)
	c.mu.Unlock()
}

// AttachContainer connects a client to the container's main process. It
// implements remotecommand.Attacher.
func (r *Runtime) AttachContainer(ctx context.Context, pod, uid, container string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	c, err := r.container(pod, container)
	if err != nil {
		return err
	}
	if len(c.spec.Command) == 0 {
		return fmt.Errorf("container %q has no process to attach to", container)
	}
	ch, _ := c.subscribe(false)
	defer c.unsubscribe(ch)
	c.mu.Lock()
	stdin, ttyFile := c.stdin, c.tty
	c.mu.Unlock()
	if ttyFile != nil && resize != nil {
		go applyResizes(ttyFile, resize)
	}
	// A hijacked stream gives no context cancellation when the client goes
	// away; the end of its stdin is the signal. Output still in flight is
	// forwarded until it has been quiet for attachLinger.
	var stdinDone <-chan time.Time
	inEnded := make(chan struct{})
	if in != nil {
		go func() {
			if stdin != nil {
				_, _ = io.Copy(stdin, in)
			} else {
				_, _ = io.Copy(io.Discard, in)
			}
			close(inEnded)
		}()
	}
	if out == nil {
		out = errOut
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-inEnded:
			inEnded = nil
			stdinDone = time.After(attachLinger)
		case <-stdinDone:
			return nil
		case b := <-ch:
			if stdinDone != nil {
				stdinDone = time.After(attachLinger)
			}
			if out != nil {
				if _, err := out.Write(b); err != nil {
					return nil
				}
			}
		}
	}
}
