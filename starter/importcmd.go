package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/time/rate"

	"github.com/insuranceflow/insuranceflow/importing"
)

type importFlags struct {
	file        string
	format      string
	dryRun      bool
	qps         float64
	concurrency int
}

// importDoc is `import --json`'s document.
type importDoc struct {
	Summary importing.Summary      `json:"summary"`
	Lines   []importing.LineResult `json:"lines"` // refused and failed lines, by line number
	Seconds float64                `json:"seconds"`
}

func newImportCmd(a *app) *cobra.Command {
	f := importFlags{concurrency: importing.DefaultConcurrency}
	cmd := &cobra.Command{
		Use:   "import --file F",
		Short: "Import policies already in flight: events the replaced system reported (already_reported) and those still to report",
		Long: "Import a file of events from the system insuranceflow replaces: NDJSON (one object a line with the\n" +
			"fields of POST /v1/insurance-results plus \"already_reported\": true|false) or CSV with a header row\n" +
			"of the same names. Lines are grouped per biz_id and applied in file order per policy, through the\n" +
			"same lifecycle and consistency checks as live events, each policy in one workflow Update.\n" +
			"already_reported events are accepted with the callback state \"imported\": never sent to TOP,\n" +
			"recorded with who imported them; the others are reported to TOP after them, like live events.\n\n" +
			"Every line has a request id (its request_id, or derived as for live events), so running the file\n" +
			"again, or the rest of it after a crash, changes nothing already imported (duplicates).\n\n" +
			"--dry-run judges every line against the policies as they stand and writes nothing. Both print every\n" +
			"refused line with its number and reason (the API's codes) and a summary; the exit code is 3 when\n" +
			"any line was refused, 4 when some policy could not be reached (run the file again).",
		Example: "  starter import --file inflight.ndjson --dry-run\n" +
			"  starter import --file inflight.csv --qps 50",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, problems := f.check()
			if len(problems) > 0 {
				return &usageError{Command: "starter import", Err: errors.New(strings.Join(problems, "; "))}
			}
			lines, err := readImportFile(a, f.file, format)
			if err != nil {
				return err
			}
			ops, err := a.policies(cmd.Context())
			if err != nil {
				return err
			}
			p, ok := ops.(importing.Policies)
			if !ok {
				return errors.New("import: this client cannot import")
			}
			opts := importing.Options{DryRun: f.dryRun, Concurrency: f.concurrency, By: osUser()}
			if f.qps > 0 {
				opts.Limiter = rate.NewLimiter(rate.Limit(f.qps), 1)
			}
			var (
				mu      sync.Mutex
				bad     []importing.LineResult
				bar     *progressbar.ProgressBar
				started = a.now()
			)
			if a.progress && !a.cfg.JSON {
				desc := "import"
				if f.dryRun {
					desc = "dry run"
				}
				bar = progressbar.NewOptions(len(lines),
					progressbar.OptionSetWriter(a.stderr),
					progressbar.OptionSetDescription(desc),
					progressbar.OptionShowCount(),
					progressbar.OptionShowIts(),
					progressbar.OptionSetItsString("events"),
					progressbar.OptionSetPredictTime(true),
					progressbar.OptionThrottle(100*time.Millisecond),
				)
			}
			opts.Report = func(r importing.LineResult) {
				if bar != nil {
					_ = bar.Add(1) // a bar that cannot draw must not stop the import
				}
				if r.Outcome == importing.OutcomeRefused || r.Outcome == importing.OutcomeFailed {
					mu.Lock()
					bad = append(bad, r)
					mu.Unlock()
				}
			}
			// No call timeout: an import runs as long as its file takes;
			// each Temporal call is bounded by the client's own deadlines.
			sum, err := importing.Run(cmd.Context(), p, lines, opts)
			if bar != nil {
				_ = bar.Finish()
				fmt.Fprintln(a.stderr)
			}
			if err != nil {
				return fmt.Errorf("import: %w", err)
			}
			slices.SortFunc(bad, func(x, y importing.LineResult) int { return x.Line - y.Line })
			doc := importDoc{Summary: sum, Lines: bad, Seconds: a.now().Sub(started).Seconds()}
			if doc.Lines == nil {
				doc.Lines = []importing.LineResult{}
			}
			if err := a.emit(doc, func(w io.Writer) error { return printImport(w, doc) }); err != nil {
				return err
			}
			switch {
			case sum.Failed > 0:
				return &shownError{Err: &unavailableError{Backend: "temporal", Target: a.cfg.Address,
					Err: fmt.Errorf("%d lines were not imported; run the file again", sum.Failed)}}
			case sum.Refused > 0:
				return &shownError{Err: &importRefusedError{Refused: sum.Refused}}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&f.file, "file", "", "the import file (- for stdin); required")
	cmd.Flags().StringVar(&f.format, "format", "", "ndjson or csv (default: csv for a .csv file, else ndjson)")
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "judge every line, write nothing")
	cmd.Flags().Float64Var(&f.qps, "qps", 0, "at most this many calls to Temporal a second (one per policy); 0: no limit")
	cmd.Flags().IntVar(&f.concurrency, "concurrency", importing.DefaultConcurrency, "policies in flight at once")
	return cmd
}

// importRefusedError is an import that refused lines: exit 3, like a
// rejected event.
type importRefusedError struct{ Refused int }

func (e *importRefusedError) Error() string {
	return fmt.Sprintf("import: %d lines refused", e.Refused)
}

func (f importFlags) check() (importing.Format, []string) {
	var problems []string
	if f.file == "" {
		problems = append(problems, "--file is required")
	}
	if f.qps < 0 {
		problems = append(problems, fmt.Sprintf("--qps: %v is negative", f.qps))
	}
	if f.concurrency < 1 {
		problems = append(problems, fmt.Sprintf("--concurrency: %d is not positive", f.concurrency))
	}
	format := importing.FormatNDJSON
	switch {
	case f.format != "":
		var err error
		if format, err = importing.ParseFormat(f.format); err != nil {
			problems = append(problems, "--format: "+err.Error())
		}
	case strings.EqualFold(filepath.Ext(f.file), ".csv"):
		format = importing.FormatCSV
	}
	return format, problems
}

// readImportFile reads the file (or stdin for "-"). A file that cannot be
// read at all is bad input.
func readImportFile(a *app, path string, format importing.Format) ([]importing.Line, error) {
	var r io.Reader = a.stdin
	if path != "-" {
		file, err := os.Open(path)
		if err != nil {
			return nil, &usageError{Command: "starter import", Err: fmt.Errorf("--file: %w", err)}
		}
		defer file.Close()
		r = file
	}
	lines, err := importing.Read(r, format)
	if err != nil {
		return nil, &usageError{Command: "starter import", Err: fmt.Errorf("%s: %w", path, err)}
	}
	return lines, nil
}

// printImport prints every refused or failed line, then the summary.
func printImport(w io.Writer, doc importDoc) error {
	for _, r := range doc.Lines {
		fmt.Fprintf(w, "line %d: %s", r.Line, r.Outcome)
		if r.BizID != "" {
			fmt.Fprintf(w, " biz_id %s", r.BizID)
		}
		if e := r.Error; e != nil {
			fmt.Fprintf(w, ": %s: %s", e.Code, e.Message)
			if len(e.AllowedStages) > 0 && !strings.Contains(e.Message, "allowed:") {
				fmt.Fprintf(w, " (allowed: %s)", strings.Join(e.AllowedStages, ", "))
			}
		}
		fmt.Fprintln(w)
	}
	s := doc.Summary
	verb := "imported"
	if s.DryRun {
		verb = "dry run, nothing written; would import"
	}
	_, err := fmt.Fprintf(w, "%s: %d policies, %d lines: %d imported as already reported, %d to report to TOP, %d duplicates, %d refused, %d failed (%.1fs)\n",
		verb, s.Policies, s.Lines, s.Imported, s.Queued, s.Duplicates, s.Refused, s.Failed, doc.Seconds)
	return err
}
