package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/insuranceflow/insuranceflow/reconcile"
)

// differError is a reconciliation whose sides do not hold the same events:
// exit 6, so a script can tell "they differ" from "could not compare".
type differError struct{ Report reconcile.Report }

func (e *differError) Error() string {
	return fmt.Sprintf("reconcile: %d events only in the list, %d only in insuranceflow",
		e.Report.MissingInStore, e.Report.MissingInList)
}

func newReconcileCmd(a *app) *cobra.Command {
	var (
		file, format string
		onlyListed   bool
	)
	cmd := &cobra.Command{
		Use:   "reconcile --file F",
		Short: "Compare a business system's own list of events with what insuranceflow recorded",
		Long: "Compare a business system's list of events (NDJSON or CSV with a header row: biz_id, stage, status,\n" +
			"time_of_occurrence, and/or request_id; stage and status as numbers or names) with the database, and\n" +
			"print per policy what only the list has (never accepted here), what only insuranceflow has, and what\n" +
			"both have that is not yet delivered to TOP (imported and skipped events count as done). Events are\n" +
			"matched by request_id when the list gives one, else by biz_id, stage, status and time. The store is\n" +
			"read row by row. --only-listed leaves out policies the list does not name.\n\n" +
			"Exit code: 0 when both sides hold the same events (undelivered ones are listed, not counted), 7 when\n" +
			"they differ, 2 for a bad list (every bad line is named), 4 when the database is unreachable.",
		Example: "  starter reconcile --file claims-events.csv\n  starter --json reconcile --file today.ndjson --only-listed",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return &usageError{Command: "starter reconcile", Err: errors.New("--file is required")}
			}
			isCSV := strings.EqualFold(filepath.Ext(file), ".csv")
			switch format {
			case "":
			case "csv":
				isCSV = true
			case "ndjson":
				isCSV = false
			default:
				return &usageError{Command: "starter reconcile", Err: fmt.Errorf("--format: %q is not ndjson or csv", format)}
			}
			var r io.Reader = a.stdin
			if file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return &usageError{Command: "starter reconcile", Err: fmt.Errorf("--file: %w", err)}
				}
				defer f.Close()
				r = f
			}
			entries, err := reconcile.Read(r, isCSV)
			if err != nil {
				return &usageError{Command: "starter reconcile", Err: fmt.Errorf("%s: %w", file, err)}
			}
			h, err := a.history(cmd.Context())
			if err != nil {
				return err
			}
			ex, ok := h.(reconcile.Exporter)
			if !ok {
				return errors.New("reconcile: this database cannot export events")
			}
			rep, err := reconcile.Compare(cmd.Context(), ex, entries, onlyListed)
			if err != nil {
				return err
			}
			if err := a.emit(rep, func(w io.Writer) error { return printReconcile(w, rep) }); err != nil {
				return err
			}
			if !rep.Agree() {
				return &shownError{Err: &differError{Report: rep}}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "the business system's list (- for stdin); required")
	cmd.Flags().StringVar(&format, "format", "", "ndjson or csv (default: csv for a .csv file, else ndjson)")
	cmd.Flags().BoolVar(&onlyListed, "only-listed", false, "compare only the policies the list names")
	return cmd
}

func printReconcile(w io.Writer, rep reconcile.Report) error {
	for _, p := range rep.Policies {
		fmt.Fprintf(w, "%s\n", p.BizID)
		for _, e := range p.MissingInStore {
			what := e.RequestID
			if e.Stage != "" {
				what = fmt.Sprintf("%s/%s at %s", e.Stage, e.Status, e.TimeOfOccurrence)
			}
			fmt.Fprintf(w, "  only in the list (line %d): %s\n", e.Line, what)
		}
		for _, e := range p.MissingInList {
			fmt.Fprintf(w, "  only in insuranceflow: #%d %s/%s at %s (%s)\n", e.Seq, e.Stage, e.Status, e.TimeOfOccurrence, e.Callback)
		}
		for _, e := range p.NotDelivered {
			fmt.Fprintf(w, "  not yet delivered: #%d %s/%s (%s)\n", e.Seq, e.Stage, e.Status, e.Callback)
		}
	}
	verdict := "agree"
	if !rep.Agree() {
		verdict = "DIFFER"
	}
	_, err := fmt.Fprintf(w, "%s: %d events in the list, %d in insuranceflow, %d matched; %d only in the list, %d only in insuranceflow, %d not yet delivered\n",
		verdict, rep.ListEvents, rep.StoreEvents, rep.Matched, rep.MissingInStore, rep.MissingInList, rep.NotDelivered)
	return err
}
