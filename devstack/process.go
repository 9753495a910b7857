package devstack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"syscall"
	"time"
)

// process is one child of the stack, the leader of its own process group.
type process struct {
	name    string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited and been reaped
	waitErr error
	pidv    int
}

func (p *process) pid() int { return p.pidv }

func (p *process) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// signal sends sig to the process's whole group, so anything it spawned
// goes with it.
func (p *process) signal(sig syscall.Signal) {
	if p.running() {
		_ = syscall.Kill(-p.pidv, sig)
	}
}

func (p *process) kill() { p.signal(syscall.SIGKILL) }

// terminate sends SIGTERM and waits up to grace before SIGKILL.
func (p *process) terminate(grace time.Duration) {
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.kill()
		<-p.done
	}
}

// errExited is returned by waits when the process died while being waited for.
var errExited = errors.New("process exited")

// waitFor polls check every 200 ms until it succeeds, p (if any) exits,
// ctx ends or d passes.
func waitFor(ctx context.Context, d time.Duration, p *process, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var last error
	for {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		err := check(cctx)
		ccancel()
		if err == nil {
			return nil
		}
		last = err
		var exited <-chan struct{}
		if p != nil {
			exited = p.done
		}
		select {
		case <-exited:
			return fmt.Errorf("%w (%v) while waiting; last check: %v", errExited, p.waitErr, last)
		case <-ctx.Done():
			return fmt.Errorf("not ready within %s: %w", d, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitHTTP waits until GET url answers 200.
func waitHTTP(ctx context.Context, url string, p *process) error {
	return waitFor(ctx, readyTimeout, p, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	})
}
