package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/insuranceflow/insuranceflow/devstack"
)

// receiptLog follows topsim's receipt file (JSON lines, arrival order), so
// the benchmark learns about deliveries without loading topsim with polls.
type receiptLog struct {
	path string

	mu     sync.Mutex
	off    int64
	tail   []byte // an incomplete last line
	byBiz  map[string][]devstack.Receipt
	prefix string // only biz_ids with this prefix are kept
	err    error
}

func newReceiptLog(path, prefix string) *receiptLog {
	return &receiptLog{path: path, prefix: prefix, byBiz: map[string][]devstack.Receipt{}}
}

// poll reads what was appended since the last poll.
func (r *receiptLog) poll() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := os.Open(r.path)
	if os.IsNotExist(err) {
		return nil // topsim creates it with the first receipt
	}
	if err != nil {
		return fmt.Errorf("open receipts: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(r.off, io.SeekStart); err != nil {
		return fmt.Errorf("seek receipts: %w", err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("read receipts: %w", err)
	}
	r.off += int64(len(b))
	buf := append(r.tail, b...)
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		line := buf[:i]
		buf = buf[i+1:]
		var rc devstack.Receipt
		if err := json.Unmarshal(line, &rc); err != nil {
			return fmt.Errorf("decode receipt %q: %w", trunc(string(line)), err)
		}
		if strings.HasPrefix(rc.BizID, r.prefix) {
			r.byBiz[rc.BizID] = append(r.byBiz[rc.BizID], rc)
		}
	}
	r.tail = append([]byte(nil), buf...)
	return nil
}

// follow polls every interval until ctx ends.
func (r *receiptLog) follow(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.poll(); err != nil {
				r.mu.Lock()
				r.err = err
				r.mu.Unlock()
				return
			}
		}
	}
}

// of returns a copy of the receipts for bizID, in arrival order.
func (r *receiptLog) of(bizID string) []devstack.Receipt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]devstack.Receipt(nil), r.byBiz[bizID]...)
}

// count is how many biz_ids have at least want(bizID) receipts.
func (r *receiptLog) count(bizIDs []string, want func(i int) int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for i, b := range bizIDs {
		if len(r.byBiz[b]) >= want(i) {
			n++
		}
	}
	return n
}

func (r *receiptLog) failure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}
