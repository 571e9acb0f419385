package testkubelet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/creack/pty"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// waitDelay bounds how long an exec waits for its output pipes to close after
// the process exits (a background child may hold them open).
const waitDelay = 2 * time.Second

// ExecInContainer runs cmd as a local process in the container's working
// directory. It implements remotecommand.Executor.
func (r *Runtime) ExecInContainer(ctx context.Context, pod, uid, container string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	c, err := r.container(pod, container)
	if err != nil {
		return err
	}
	if len(cmd) == 0 {
		return errors.New("no command given")
	}
	proc := exec.CommandContext(ctx, cmd[0], cmd[1:]...)
	proc.Dir = c.dir
	proc.Env = c.env
	proc.WaitDelay = waitDelay
	if tty {
		err = runTTY(proc, in, out, resize)
	} else {
		err = runPipes(proc, in, out, errOut)
	}
	return exitError(err)
}

// runPipes runs proc with plain pipes. Stdin is copied by our own goroutine
// so that a client that never closes stdin cannot keep Wait from returning.
func runPipes(proc *exec.Cmd, in io.Reader, out, errOut io.Writer) error {
	if out != nil {
		proc.Stdout = out
	}
	if errOut != nil {
		proc.Stderr = errOut
	}
	var stdin io.WriteCloser
	if in != nil {
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
		go func() {
			_, _ = io.Copy(stdin, in)
			_ = stdin.Close()
		}()
	}
	return proc.Wait()
}

// runTTY runs proc under a new pseudo-terminal, applying resize events to it.
func runTTY(proc *exec.Cmd, in io.Reader, out io.Writer, resize <-chan remotecommand.TerminalSize) error {
	f, err := pty.Start(proc)
	if err != nil {
		return err
	}
	defer f.Close()
	go applyResizes(f, resize)
	if in != nil {
		go func() { _, _ = io.Copy(f, in) }()
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		if out != nil {
			_, _ = io.Copy(out, f) // ends with EIO once the process and its children are gone
		} else {
			_, _ = io.Copy(io.Discard, f)
		}
	}()
	err = proc.Wait()
	select {
	case <-copied:
	case <-time.After(waitDelay):
	}
	return err
}

func applyResizes(f *os.File, resize <-chan remotecommand.TerminalSize) {
	if resize == nil {
		return
	}
	for size := range resize {
		if size.Width == 0 || size.Height == 0 {
			continue
		}
		_ = pty.Setsize(f, &pty.Winsize{Rows: size.Height, Cols: size.Width})
	}
}

// exitError turns a process exit status into the error type the streaming
// server reports as a NonZeroExitCode status.
func exitError(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		return utilexec.CodeExitError{Err: fmt.Errorf("command exited with status %d", ee.ExitCode()), Code: ee.ExitCode()}
	}
	return err
}
