package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/store"
)

// seedStore records one policy with two events (the first delivered on its
// second attempt, the second parked after a permanent refusal) in a real
// SQLite file, and returns its DATABASE_URL.
func seedStore(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	url := "sqlite://" + filepath.Join(t.TempDir(), "audit.db")
	st, err := store.Open(ctx, url)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	defer st.Close()

	accepted := time.Date(2025, 4, 8, 1, 55, 1, 0, time.UTC)
	event := func(seq int64, stage insurance.Stage, when, stateAfter string) store.Event {
		r := insurance.Result{
			BizID: "H1", Stage: stage, Status: insurance.StatusSuccess, TimeOfOccurrence: when,
			InsuranceType: insurance.TypeHomeProperty, BankAccountManagerName: managerName,
		}.WithRequestID()
		payload, err := r.APIJSON()
		if err != nil {
			t.Fatal(err)
		}
		return store.Event{
			Seq: seq, RequestID: r.RequestID, Stage: int(stage), Status: int(r.Status), TimeOfOccurrence: when,
			Payload: payload, AcceptedAt: accepted.Add(time.Duration(seq) * time.Minute), StateAfter: stateAfter,
		}
	}
	if err := st.RecordEvents(ctx, store.Policy{BizID: "H1", InsuranceType: int(insurance.TypeHomeProperty), CallbackState: "parked"},
		event(1, insurance.StagePreInsure, "2025-04-08 09:55:00", "pre_insured"),
		event(2, insurance.StageUnderwrite, "2025-04-08 09:56:00", "underwritten"),
	); err != nil {
		t.Fatalf("record events: %v", err)
	}
	// An operator retried seq 1 (parked by an earlier refusal) before its
	// attempts below; a delivered event stays delivered.
	if err := st.SetCallbackByOperator(ctx, "H1", 1, "queued", "", store.OperatorAction{
		Action: "retry", By: "ops-alice", Reason: "app key renewed", At: accepted.Add(90 * time.Second),
	}); err != nil {
		t.Fatalf("record operator action: %v", err)
	}
	for _, a := range []store.Attempt{
		{Seq: 1, Attempt: 1, StartedAt: accepted.Add(2 * time.Minute), Duration: 5 * time.Second, Class: "retryable",
			HTTPStatus: 503, Detail: "upstream said no to " + managerName},
		{Seq: 1, Attempt: 2, StartedAt: accepted.Add(3 * time.Minute), Duration: 120 * time.Millisecond, Class: store.ClassDelivered,
			HTTPStatus: 200, TOPRequestID: "top-req-2"},
		{Seq: 2, Attempt: 1, StartedAt: accepted.Add(4 * time.Minute), Duration: 80 * time.Millisecond, Class: "permanent",
			HTTPStatus: 200, Code: 15, SubCode: "isv.invalid-parameter", Msg: "Remote service error", SubMsg: "非法参数",
			FailCode: "BIZ_PARKED", FailMessage: "refused", TOPRequestID: "top-req-3"},
	} {
		a.BizID = "H1"
		if err := st.RecordAttempt(ctx, a); err != nil {
			t.Fatalf("record attempt: %v", err)
		}
	}
	// Seq 2's attempt 3 is running (or its worker died); attempt 2 left no
	// row, so attempt 3 recorded it as lost.
	if err := st.StartAttempt(ctx, "H1", 2, 3, accepted.Add(5*time.Minute)); err != nil {
		t.Fatalf("start attempt: %v", err)
	}
	return url
}

// unreachableAddress is a host:port nothing listens on.
func unreachableAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func liveCLI() (cli, *liveBackends) {
	b := &liveBackends{logger: slog.New(slog.DiscardHandler)}
	return cli{backends: b}, b
}

func TestHistoryReadsTheStoreWithoutTemporal(t *testing.T) {
	url := seedStore(t)
	c, b := liveCLI()
	res := c.run(t, "--database-url", url, "--address", unreachableAddress(t), "history", "H1")
	if res.code != exitOK {
		t.Fatalf("exit=%d, stderr=%s", res.code, res.stderr)
	}
	if b.temporal != nil {
		t.Fatalf("history dialled Temporal")
	}
	for _, want := range [][]string{
		{"state", "underwritten"},
		{"callback", "parked"},
		{"last_seq", "2"},
	} {
		if got := fieldsOfRow(t, res.stdout, want[0]); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("row %q=%q, want %q", want[0], got, want)
		}
	}
	events, attempts, ok := strings.Cut(res.stdout, "\nAttempts\n")
	if !ok {
		t.Fatalf("no Attempts section:\n%s", res.stdout)
	}
	attempts, actions, ok := strings.Cut(attempts, "\nOperator actions\n")
	if !ok {
		t.Fatalf("no Operator actions section:\n%s", res.stdout)
	}
	if got, want := strings.Fields(strings.Split(strings.TrimSpace(actions), "\n")[1]),
		[]string{"1", "retry", "ops-alice", "2025-04-08", "09:56:31", "app", "key", "renewed"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("operator action row=%q, want %q", got, want)
	}
	ev1 := insurance.DeriveRequestID("H1", insurance.StagePreInsure, insurance.StatusSuccess, "2025-04-08 09:55:00")
	for _, want := range [][]string{
		{"1", "pre_insure", "success", "2025-04-08", "09:55:00", "2025-04-08", "09:56:01", "pre_insured", "delivered", "2", "2025-04-08", "09:58:01", ev1},
	} {
		if got := fieldsOfRow(t, events, want[0]); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("event row=%q,\nwant %q", got, want)
		}
	}
	wantAttempts := []string{
		"1 1 2025-04-08 09:57:01 5s retryable 503 - - -",
		"1 2 2025-04-08 09:58:01 120ms delivered 200 - - top-req-2",
		"2 1 2025-04-08 09:59:01 80ms permanent 200 15/isv.invalid-parameter BIZ_PARKED top-req-3",
		"2 2 - - lost - - - -",
		"2 3 2025-04-08 10:00:01 - started - - - -",
	}
	var gotAttempts []string
	for _, line := range strings.Split(strings.TrimSpace(attempts), "\n")[1:] {
		gotAttempts = append(gotAttempts, strings.Join(strings.Fields(line), " "))
	}
	if strings.Join(gotAttempts, "\n") != strings.Join(wantAttempts, "\n") {
		t.Errorf("attempt rows:\n%s\nwant:\n%s", strings.Join(gotAttempts, "\n"), strings.Join(wantAttempts, "\n"))
	}
	if strings.Contains(res.stdout, managerName) {
		t.Fatalf("history shows the manager's name:\n%s", res.stdout)
	}
}

func TestHistoryJSON(t *testing.T) {
	url := seedStore(t)
	c, _ := liveCLI()
	res := c.run(t, "--json", "--database-url", url, "history", "H1")
	if res.code != exitOK {
		t.Fatalf("exit=%d, stderr=%s", res.code, res.stderr)
	}
	if strings.Contains(res.stdout, managerName) {
		t.Fatalf("history JSON holds the manager's name:\n%s", res.stdout)
	}
	var got historyView
	decodeOne(t, res.stdout, &got)
	if got.BizID != "H1" || got.State != "underwritten" || got.InsuranceType != "home_property" || len(got.Events) != 2 {
		t.Fatalf("history=%+v", got)
	}
	e2 := got.Events[1]
	if e2.Stage != "underwrite" || e2.Callback != "retrying" || len(e2.Attempts) != 3 {
		t.Fatalf("event 2=%+v", e2)
	}
	a := e2.Attempts[0]
	if a.Attempt != 1 || a.Class != "permanent" || a.Code != 15 || a.SubCode != "isv.invalid-parameter" ||
		a.SubMsg != "非法参数" || a.FailCode != "BIZ_PARKED" || a.TOPRequestID != "top-req-3" || a.DurationMS != 80 {
		t.Fatalf("attempt=%+v", a)
	}
	if lost, started := e2.Attempts[1], e2.Attempts[2]; lost.Attempt != 2 || lost.Class != "lost" ||
		started.Attempt != 3 || started.Class != "started" || started.DurationMS != 0 {
		t.Fatalf("attempts 2 and 3=%+v, %+v, want lost and started", lost, started)
	}
	if want := (policyclient.OperatorActionView{Seq: 1, Action: "retry", By: "ops-alice", Reason: "app key renewed",
		At: time.Date(2025, 4, 8, 1, 56, 31, 0, time.UTC)}); len(got.OperatorActions) != 1 || got.OperatorActions[0] != want {
		t.Fatalf("operator_actions=%+v, want [%+v]", got.OperatorActions, want)
	}
	if d := got.Events[0].DeliveredAt; d == nil || !d.Equal(time.Date(2025, 4, 8, 1, 58, 1, 120_000_000, time.UTC)) {
		t.Fatalf("delivered_at=%v", d)
	}
}

func TestHistoryErrors(t *testing.T) {
	url := seedStore(t)
	tests := []struct {
		name string
		args []string
		code exitCode
		want string
	}{
		{"unknown policy", []string{"--database-url", url, "history", "ghost"}, exitNotFound, `policy "ghost": not found`},
		{"unsupported database", []string{"--database-url", "mysql://db/x", "history", "H1"}, exitBadInput, `unsupported database URL scheme "mysql"`},
		{"no biz_id", []string{"--database-url", url, "history"}, exitBadInput, "accepts 1 arg(s), received 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := liveCLI()
			res := c.run(t, tt.args...)
			if res.code != tt.code {
				t.Fatalf("exit=%d, want %d; stderr=%s", res.code, tt.code, res.stderr)
			}
			if !strings.Contains(res.stderr, tt.want) {
				t.Fatalf("stderr=%q, want it to contain %q", res.stderr, tt.want)
			}
		})
	}
}

func TestLiveTemporalUnreachable(t *testing.T) {
	c, _ := liveCLI()
	res := c.run(t, "--address", unreachableAddress(t), "--timeout", "2s", "status", "B1")
	if res.code != exitUnavailable {
		t.Fatalf("exit=%d, want %d; stderr=%s", res.code, exitUnavailable, res.stderr)
	}
	if !strings.Contains(res.stderr, "temporal at 127.0.0.1:") {
		t.Fatalf("stderr=%q", res.stderr)
	}
}

// TestDatabaseURLPassword checks that a database password is refused as a
// flag (pointing at DATABASE_URL and DATABASE_URL_FILE, never repeating
// it), and that DATABASE_URL_FILE is read, with a warning naming a file
// others can read.
func TestDatabaseURLPassword(t *testing.T) {
	const password = "db-pass-word-42"
	for _, url := range []string{
		"postgres://ops:" + password + "@db:5432/flow",
		"postgres://ops@db:5432/flow?password=" + password,
		"postgres://ops@db:5432/flow?sslpassword=" + password,
	} {
		t.Run("flag refused "+url[strings.Index(url, "@"):], func(t *testing.T) {
			b := &fakeBackends{}
			res := cli{backends: b}.run(t, "--database-url", url, "history", "H1")
			if res.code != exitBadInput {
				t.Fatalf("exit=%d, want %d; stderr=%s", res.code, exitBadInput, res.stderr)
			}
			for _, want := range []string{"--database-url carries a password", "DATABASE_URL", "DATABASE_URL_FILE"} {
				if !strings.Contains(res.stderr, want) {
					t.Errorf("stderr=%q, want it to contain %q", res.stderr, want)
				}
			}
			if strings.Contains(res.stderr+res.stdout, password) {
				t.Fatalf("the password is repeated: %s", res.stderr)
			}
			if b.historyCalls != 0 {
				t.Fatalf("the store was opened despite the refusal")
			}
		})
	}

	url := seedStore(t)
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(url+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	t.Run("DATABASE_URL_FILE", func(t *testing.T) {
		c, _ := liveCLI()
		c.env = map[string]string{"DATABASE_URL_FILE": write("private", 0o400)}
		res := c.run(t, "--json", "history", "H1")
		if res.code != exitOK || res.stderr != "" {
			t.Fatalf("exit=%d, stderr=%q, want 0 and no warning", res.code, res.stderr)
		}
		var got historyView
		decodeOne(t, res.stdout, &got)
		if got.BizID != "H1" || len(got.Events) != 2 {
			t.Fatalf("history=%+v, want the seeded policy", got)
		}
	})
	t.Run("DATABASE_URL_FILE readable by others warns", func(t *testing.T) {
		c, _ := liveCLI()
		path := write("open", 0o644)
		c.env = map[string]string{"DATABASE_URL_FILE": path}
		res := c.run(t, "history", "H1")
		if res.code != exitOK || !strings.Contains(res.stderr, "warning: DATABASE_URL_FILE: secret file "+path+" is readable by its group or others") {
			t.Fatalf("exit=%d, stderr=%q, want 0 and a warning naming %s", res.code, res.stderr, path)
		}
	})
	t.Run("both DATABASE_URL and its file", func(t *testing.T) {
		b := &fakeBackends{}
		c := cli{backends: b, env: map[string]string{"DATABASE_URL": url, "DATABASE_URL_FILE": write("both", 0o400)}}
		res := c.run(t, "history", "H1")
		if res.code != exitBadInput || !strings.Contains(res.stderr, "not both") {
			t.Fatalf("exit=%d, stderr=%q, want %d and not both", res.code, res.stderr, exitBadInput)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		c := cli{backends: &fakeBackends{}, env: map[string]string{"DATABASE_URL_FILE": filepath.Join(dir, "absent")}}
		res := c.run(t, "history", "H1")
		if res.code != exitBadInput || !strings.Contains(res.stderr, "DATABASE_URL_FILE: cannot read the database URL") {
			t.Fatalf("exit=%d, stderr=%q", res.code, res.stderr)
		}
	})
}
