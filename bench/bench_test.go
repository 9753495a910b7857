package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/devstack"
	"github.com/insuranceflow/insuranceflow/insurance"
)

func TestPercentiles(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := percentiles(ds)
	want := Percentiles{Count: 100, P50: 50, P90: 90, P95: 95, P99: 99, Max: 100}
	if got != want {
		t.Fatalf("percentiles(1..100 ms) = %+v, want %+v", got, want)
	}
	if ds[0] != 100*time.Millisecond {
		t.Fatalf("percentiles sorted its input in place: ds[0]=%v", ds[0])
	}
	t.Run("small sample uses nearest rank", func(t *testing.T) {
		got := percentiles([]time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond})
		if got.P50 != 2 || got.P95 != 3 || got.P99 != 3 {
			t.Fatalf("percentiles(1,2,3 ms) = %+v, want p50 2, p95 3, p99 3", got)
		}
	})
	t.Run("empty", func(t *testing.T) {
		if got := percentiles(nil); got != (Percentiles{}) {
			t.Fatalf("percentiles(nil) = %+v, want zero", got)
		}
	})
}

func TestPlan(t *testing.T) {
	lcs := plan("BNX", 1000, 0.25, 7)
	retry := 0
	for i, l := range lcs {
		if !strings.HasPrefix(l.BizID, "BNX") {
			t.Fatalf("lifecycle %d biz_id %q lacks the prefix", i, l.BizID)
		}
		switch len(l.Steps) {
		case 5:
		case 6:
			retry++
			if l.Steps[1] != (step{insurance.StageUnderwrite, insurance.StatusFailure}) || l.Steps[2] != (step{insurance.StageUnderwrite, insurance.StatusSuccess}) {
				t.Fatalf("retry lifecycle steps %v, want a failed then a successful underwrite", l.Steps)
			}
		default:
			t.Fatalf("lifecycle %d has %d steps, want 5 or 6", i, len(l.Steps))
		}
		if l.Steps[len(l.Steps)-1].Stage != insurance.StageCancel {
			t.Fatalf("lifecycle %d ends with %s, want cancel", i, l.Steps[len(l.Steps)-1].Stage)
		}
	}
	if retry < 200 || retry > 300 {
		t.Fatalf("%d of 1000 lifecycles retry with share 0.25, want about 250", retry)
	}
	again := plan("BNX", 1000, 0.25, 7)
	for i := range lcs {
		if len(lcs[i].Steps) != len(again[i].Steps) {
			t.Fatalf("lifecycle %d differs between two plans with the same seed", i)
		}
	}

	t.Run("bodies decode and validate, time moves forward", func(t *testing.T) {
		l := plan("BNY", 1, 1, 1)[0]
		prev := ""
		for k := range l.Steps {
			r, err := insurance.Decode(l.body(k))
			if err != nil {
				t.Fatalf("step %d body: %v", k, err)
			}
			if err := r.Validate(); err != nil {
				t.Fatalf("step %d: %v", k, err)
			}
			if r.Stage != l.Steps[k].Stage || r.Status != l.Steps[k].Status {
				t.Fatalf("step %d decoded as %s/%s, want %s/%s", k, r.Stage, r.Status, l.Steps[k].Stage, l.Steps[k].Status)
			}
			if r.TimeOfOccurrence <= prev {
				t.Fatalf("step %d time %s not after %s", k, r.TimeOfOccurrence, prev)
			}
			prev = r.TimeOfOccurrence
		}
	})
}

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and a parenthesis, as a process may name itself.
	stat := "4242 (my (odd) worker) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 125 0 0 20 0 12 0 100 1000000 2000 18446744073709551615"
	got, err := parseStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if got != 3.75 {
		t.Fatalf("cpu=%v, want 3.75 (250+125 ticks)", got)
	}
	if _, err := parseStatCPU("4242 no parenthesis"); err == nil {
		t.Fatal("parseStatCPU accepted a line without a command name")
	}
	t.Run("this process", func(t *testing.T) {
		s, err := readProc(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if s.RSSKiB <= 0 || s.HWMKiB < s.RSSKiB {
			t.Fatalf("readProc(self) = %+v, want RSS > 0 and HWM ≥ RSS", s)
		}
	})
}

func TestCPUBudgetPerLifecycle(t *testing.T) {
	before := cpuReading{server: 10, workers: 4, topsim: 1, bench: 2, heartbeats: 7}
	after := cpuReading{server: 16, workers: 6, topsim: 1.2, bench: 2.8, heartbeats: 7}
	cpu, hb := before.perLifecycle(after, 100)
	want := cpuBudget{Server: 60, Workers: 20, TOPSim: 2, Bench: 8, Total: 90}
	if cpu != want || hb != 0 {
		t.Fatalf("budget %+v, heartbeats %v; want %+v and 0", cpu, hb, want)
	}
	// An external server: its share unknown, so no total either.
	before.server, before.heartbeats = -1, -1
	if cpu, hb := before.perLifecycle(after, 100); cpu.Server != 0 || cpu.Total != 0 || cpu.Workers != 20 || hb != -1 {
		t.Fatalf("with an external server: %+v, %v", cpu, hb)
	}
}

func TestParseStatusMem(t *testing.T) {
	status := "Name:\tworker\nVmPeak:\t  900000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\nThreads:\t12\n"
	rss, hwm, err := parseStatusMem(bufio.NewScanner(strings.NewReader(status)))
	if err != nil || rss != 40960 || hwm != 51200 {
		t.Fatalf("parseStatusMem = %d, %d, %v; want 40960, 51200", rss, hwm, err)
	}
	if _, _, err := parseStatusMem(bufio.NewScanner(strings.NewReader("VmRSS:\t1 kB\n"))); err == nil {
		t.Fatal("parseStatusMem accepted a status without VmHWM")
	}
	if _, _, err := parseStatusMem(bufio.NewScanner(strings.NewReader("VmRSS:\t1 MB\nVmHWM:\t1 kB\n"))); err == nil {
		t.Fatal("parseStatusMem accepted a unit other than kB")
	}
}

func TestJudgeGrowth(t *testing.T) {
	pts := func(growth ...float64) []rssPoint {
		out := []rssPoint{{Open: 0}}
		for i, g := range growth {
			out = append(out, rssPoint{Open: (i + 1) * 1000, GrowthMiB: g})
		}
		return out
	}
	tests := []struct {
		name   string
		points []rssPoint
		want   bool
		ratio  float64
	}{
		{name: "linear", points: pts(10, 20, 40), want: false, ratio: 4},
		{name: "flattening", points: pts(10, 14, 18), want: true, ratio: 1.8},
		{name: "super-linear", points: pts(10, 25, 70), want: false, ratio: 7},
		{name: "flat", points: pts(0, 0, 0), want: true, ratio: 0},
		{name: "growth only later", points: pts(0, 5, 20), want: false, ratio: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := openFigures{Points: tt.points}
			judgeGrowth(&f)
			if f.SubLinear != tt.want || f.GrowthRatio != tt.ratio {
				t.Fatalf("sub-linear=%v ratio=%v, want %v and %v", f.SubLinear, f.GrowthRatio, tt.want, tt.ratio)
			}
			if _, err := json.Marshal(f); err != nil {
				t.Fatalf("figures do not encode: %v", err)
			}
		})
	}
}

func TestReplaceSection(t *testing.T) {
	section := readmeStart + "\n## Performance\nnew\n" + readmeEnd
	tests := []struct {
		name, doc, want string
	}{
		{name: "appends when absent", doc: "# x\n\ntext\n", want: "# x\n\ntext\n\n" + section + "\n"},
		{name: "replaces between markers", doc: "a\n" + readmeStart + "\nold\n" + readmeEnd + "\nz\n", want: "a\n" + section + "\nz\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := replaceSection("README.md", []byte(tt.doc), section)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got:\n%q\nwant:\n%q", got, tt.want)
			}
		})
	}
	bad := []struct{ name, doc string }{
		{name: "start only", doc: readmeStart + "\n"},
		{name: "end before start", doc: readmeEnd + "\n" + readmeStart + "\n"},
		{name: "two sections", doc: readmeStart + readmeEnd + readmeStart + readmeEnd},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := replaceSection("README.md", []byte(tt.doc), section)
			var me *MarkerError
			if !errors.As(err, &me) {
				t.Fatalf("err=%v, want a *MarkerError", err)
			}
		})
	}
}

func TestReceiptLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "receipts.jsonl")
	rl := newReceiptLog(path, "BNA")
	if err := rl.poll(); err != nil {
		t.Fatalf("poll before the file exists: %v", err)
	}
	line := func(order int64, biz string, stage insurance.Stage) string {
		b, err := json.Marshal(devstack.Receipt{Order: order, BizID: biz, Stage: stage, Status: insurance.StatusSuccess, ReceivedAt: time.Unix(order, 0)})
		if err != nil {
			t.Fatal(err)
		}
		return string(b) + "\n"
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	second := line(3, "BNA1", insurance.StageUnderwrite)
	// A receipt written in two pieces must be read once, whole.
	f.WriteString(line(1, "BNA1", insurance.StagePreInsure) + line(2, "OTHER", insurance.StagePreInsure) + second[:10])
	if err := rl.poll(); err != nil {
		t.Fatal(err)
	}
	if got := rl.of("BNA1"); len(got) != 1 || got[0].Stage != insurance.StagePreInsure {
		t.Fatalf("after the first poll: %+v, want the pre_insure receipt only", got)
	}
	f.WriteString(second[10:])
	if err := rl.poll(); err != nil {
		t.Fatal(err)
	}
	got := rl.of("BNA1")
	if len(got) != 2 || got[1].Stage != insurance.StageUnderwrite || got[1].Order != 3 {
		t.Fatalf("after the second poll: %+v, want pre_insure then underwrite", got)
	}
	if n := len(rl.of("OTHER")); n != 0 {
		t.Fatalf("kept %d receipts of another prefix, want 0", n)
	}
	if n := rl.count([]string{"BNA1", "BNA2"}, func(int) int { return 2 }); n != 1 {
		t.Fatalf("count=%d, want 1", n)
	}
}

func TestAwaitDeliveryMatchesInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "receipts.jsonl")
	base := time.Date(2025, 4, 8, 10, 0, 0, 0, time.UTC)
	lcs := []lifecycle{{BizID: "BNB1", Steps: happySteps()[:2]}}
	runs := []lcRun{{acceptedAt: []time.Time{base, base.Add(time.Second)}}}
	var lines []byte
	for i, r := range []devstack.Receipt{
		{BizID: "BNB1", Stage: insurance.StagePreInsure, Status: insurance.StatusSuccess, ReceivedAt: base.Add(100 * time.Millisecond)},
		// a repeated delivery of the first step is skipped
		{BizID: "BNB1", Stage: insurance.StagePreInsure, Status: insurance.StatusSuccess, ReceivedAt: base.Add(900 * time.Millisecond)},
		{BizID: "BNB1", Stage: insurance.StageUnderwrite, Status: insurance.StatusSuccess, ReceivedAt: base.Add(1300 * time.Millisecond)},
	} {
		r.Order = int64(i + 1)
		b, _ := json.Marshal(r)
		lines = append(append(lines, b...), '\n')
	}
	if err := os.WriteFile(path, lines, 0o600); err != nil {
		t.Fatal(err)
	}
	rl := newReceiptLog(path, "BNB")
	delivery, err := awaitDelivery(t.Context(), rl, lcs, runs, time.Second, newBar(1, "test"))
	if err != nil {
		t.Fatal(err)
	}
	if len(delivery) != 2 || delivery[0] != 100*time.Millisecond || delivery[1] != 300*time.Millisecond {
		t.Fatalf("delivery=%v, want [100ms 300ms]", delivery)
	}
	if runs[0].err != nil || !runs[0].completeAt.Equal(base.Add(1300*time.Millisecond)) {
		t.Fatalf("run = %+v, want complete at +1.3s", runs[0])
	}
	res := summarise(base, runs, delivery)
	if res.Completed != 1 || res.LifecyclesPerSec != round2(1/1.3) {
		t.Fatalf("summary %+v, want 1 completed at %.2f/s", res, round2(1/1.3))
	}
}

func TestParseCPUInfo(t *testing.T) {
	n, model := parseCPUInfo("processor\t: 0\nmodel name\t: Test CPU @ 1GHz\n\nprocessor\t: 1\nmodel name\t: Test CPU @ 1GHz\n")
	if n != 2 || model != "Test CPU @ 1GHz" {
		t.Fatalf("parseCPUInfo = %d, %q; want 2, \"Test CPU @ 1GHz\"", n, model)
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		wantCmd string
	}{
		{name: "defaults with a dev server", args: []string{"-temporal-bin", "/x/temporal"}, wantCmd: "go run ./bench"},
		{name: "measured flags are in the command", args: []string{"-temporal-bin", "/x", "-n", "50", "-c", "4", "-update-readme"}, wantCmd: "go run ./bench -c=4 -n=50"},
		{name: "no temporal", args: []string{"-temporal-bin", ""}, wantErr: "-temporal-bin"},
		{name: "database password refused", args: []string{"-temporal-bin", "/x", "-database-url", "postgres://u@db/b?sslpassword=s3cret"}, wantErr: "-database-url carries a password; put the URL in a file only you can read and name it in DATABASE_URL_FILE"},
		{name: "database URL without a password is in the command", args: []string{"-temporal-bin", "/x", "-database-url", "postgres://u@db/b"}, wantCmd: "go run ./bench -database-url=postgres://u@db/b"},
		{name: "bad numbers", args: []string{"-temporal-bin", "/x", "-n", "0", "-failure-share", "2", "-open-policies", "2"}, wantErr: "-n must be at least 1; -failure-share must be between 0 and 1; -open-policies must be 0 or at least 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, cmd, err := parseFlags(tt.args, func(string) string { return "" })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("err=%v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || cmd != tt.wantCmd {
				t.Fatalf("command=%q err=%v, want %q", cmd, err, tt.wantCmd)
			}
		})
	}
}

func TestParseFlagsDatabaseURLFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "database-url")
	const url = "postgres://bench:s3cret@db/flow"
	if err := os.WriteFile(path, []byte(url+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	f, cmd, err := parseFlags([]string{"-temporal-bin", "/x"}, func(k string) string {
		return map[string]string{"DATABASE_URL_FILE": path}[k]
	})
	if err != nil || f.databaseURL != url || strings.Contains(cmd, "s3cret") {
		t.Fatalf("databaseURL=%q command=%q err=%v, want %q from the file and no password in the command", f.databaseURL, cmd, err, url)
	}
}

func TestWriteChart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "latency.png")
	ss := []series{
		{Name: "a", Samples: []time.Duration{-time.Millisecond, 5 * time.Millisecond, 50 * time.Millisecond}},
		{Name: "empty"},
	}
	if err := writeChart(path, ss); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 1000 || string(b[1:4]) != "PNG" {
		t.Fatalf("%s is %d bytes starting %q, want a PNG", path, len(b), b[:min(8, len(b))])
	}
	pts := cdf(ss[0].Samples)
	if pts[0].X != chartMinMS || pts[2].X != 50 || pts[2].Y != 1 {
		t.Fatalf("cdf = %v, want the ≤0 sample at the left edge and 50 ms at 1.0", pts)
	}
}

// TestSummariseSplitsFirstAndLaterEvents: the first event of a lifecycle
// starts its workflow and is reported apart from the events after it; a
// lifecycle that failed still contributes the steps it got accepted.
func TestSummariseSplitsFirstAndLaterEvents(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var ds []time.Duration
		for _, x := range v {
			ds = append(ds, time.Duration(x)*time.Millisecond)
		}
		return ds
	}
	runs := []lcRun{
		{accept: ms(400, 10, 20)},
		{accept: ms(600, 30), err: errors.New("step 3 refused")},
		{},
	}
	res := summarise(time.Now(), runs, nil)
	if res.AcceptFirst.Count != 2 || res.AcceptFirst.Max != 600 {
		t.Errorf("first events: %+v, want 2 with max 600 ms", res.AcceptFirst)
	}
	if res.AcceptLater.Count != 3 || res.AcceptLater.Max != 30 {
		t.Errorf("later events: %+v, want 3 with max 30 ms", res.AcceptLater)
	}
	if res.Accept.Count != 5 {
		t.Errorf("all events: %+v, want 5", res.Accept)
	}
}
