package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/store"
)

type exportFlags struct {
	since, until string
	state        string
	format       string
}

func (f exportFlags) filter() (store.ExportFilter, error) {
	var (
		problems []string
		out      store.ExportFilter
	)
	for _, b := range []struct {
		name, value string
		into        *time.Time
	}{{"--since", f.since, &out.Since}, {"--until", f.until, &out.Until}} {
		if b.value == "" {
			continue
		}
		t, err := policyclient.ParseExportTime(b.value)
		if err != nil {
			problems = append(problems, b.name+": "+err.Error())
		}
		*b.into = t
	}
	if f.state != "" && !slices.Contains(store.EventCallbacks(), f.state) {
		problems = append(problems, fmt.Sprintf("--state: unknown callback state %q (want one of %s)",
			f.state, strings.Join(store.EventCallbacks(), ", ")))
	}
	out.Callback = f.state
	if f.format != "ndjson" && f.format != "csv" {
		problems = append(problems, fmt.Sprintf("--format: %q is not ndjson or csv", f.format))
	}
	if len(problems) > 0 {
		return store.ExportFilter{}, &usageError{Command: "starter export", Err: errors.New(strings.Join(problems, "; "))}
	}
	return out, nil
}

func newExportCmd(a *app) *cobra.Command {
	f := exportFlags{format: "ndjson"}
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write every accepted event (seq, request id, callback state, attempts, delivered time, TOP request id) from the database",
		Long: "Write every accepted event the database holds, in the order accepted (accepted_at, biz_id, seq),\n" +
			"as NDJSON (one object a line) or CSV with a header row, for reconciliation. The rows are\n" +
			"read and written one at a time, so any number of them exports in constant memory.\n" +
			"--state filters on the callback state (queued, sending, retrying, delivered, parked, skipped, imported).\n" +
			"Times are RFC 3339, \"2006-01-02 15:04:05\" or \"2006-01-02\" (Beijing time unless an offset is given);\n" +
			"--since is inclusive, --until exclusive. Needs only the database, not Temporal.",
		Example: "  starter export --since 2025-04-01 --until 2025-05-01 --format csv > april.csv\n" +
			"  starter export --state parked",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filter, err := f.filter()
			if err != nil {
				return err
			}
			h, err := a.history(cmd.Context())
			if err != nil {
				return err
			}
			ex, ok := h.(policyclient.EventExporter)
			if !ok {
				return errors.New("export: this database cannot export events")
			}
			w := bufio.NewWriterSize(a.stdout, 64<<10)
			write := ndjsonWriter(w)
			var cw *csv.Writer
			if f.format == "csv" {
				cw = csv.NewWriter(w)
				if err := cw.Write(policyclient.ExportCSVHeader()); err != nil {
					return err
				}
				write = func(r policyclient.ExportRow) error { return cw.Write(r.CSVRecord()) }
			}
			// No call timeout: an export runs as long as its rows take;
			// Ctrl-C cancels it.
			if err := ex.ExportEvents(cmd.Context(), filter, func(e store.ExportedEvent) error {
				return write(policyclient.NewExportRow(e))
			}); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			if cw != nil {
				if cw.Flush(); cw.Error() != nil {
					return fmt.Errorf("export: %w", cw.Error())
				}
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&f.since, "since", "", "only events accepted at or after this time")
	cmd.Flags().StringVar(&f.until, "until", "", "only events accepted before this time")
	cmd.Flags().StringVar(&f.state, "state", "", "only events whose callback is in this state")
	cmd.Flags().StringVar(&f.format, "format", "ndjson", "ndjson or csv")
	return cmd
}

// ndjsonWriter writes rows as JSON, one a line.
func ndjsonWriter(w *bufio.Writer) func(policyclient.ExportRow) error {
	enc := json.NewEncoder(w)
	return func(r policyclient.ExportRow) error { return enc.Encode(r) }
}
