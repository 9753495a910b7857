package main

import (
	"fmt"
	"math"
	"strings"
)

// Sources of the two figures the capacity model does not measure.
const (
	pricingURL  = "https://docs.temporal.io/cloud/pricing"
	envelopeURL = "https://docs.temporal.io/cloud/introduction/operating-envelope"
	// cloudDefaultAPS is a Temporal Cloud namespace's default rate limit
	// in actions per second (the operating envelope page).
	cloudDefaultAPS = 400
)

// capacityInputs are the measured figures the model is computed from.
type capacityInputs struct {
	ActionsPerLifecycle   float64 `json:"actions_per_lifecycle"`
	HistoryEvents         float64 `json:"history_events_per_lifecycle"`
	HistoryBytes          float64 `json:"history_bytes_per_lifecycle"`
	StoreRows             float64 `json:"store_rows_per_lifecycle"`
	StoreBytes            float64 `json:"store_bytes_per_lifecycle"`
	CPUSecondsPerLifecyle float64 `json:"worker_cpu_seconds_per_lifecycle"`
	WorkerRSSMiB          float64 `json:"worker_rss_mib"` // with the workflow cache full (the open phase's last sample), else the peak
	// WorkerLifecyclesPerSec is one worker's saturated throughput here
	// (median of the rounds), on a host it shares with the server.
	WorkerLifecyclesPerSec float64 `json:"worker_lifecycles_per_sec"`
	// ShardActionsPerSec is what the measured server sustained per history
	// shard at saturation: the baseline's actions/s ÷ the server's shards.
	ShardActionsPerSec float64 `json:"shard_actions_per_sec"`
	ServerShards       int     `json:"server_shards"`
	PricePerMillion    float64 `json:"price_per_million_actions_usd"`
	PeakFactor         float64 `json:"peak_factor"`
}

// capacityRow is the model for one daily volume.
type capacityRow struct {
	PoliciesPerDay   int     `json:"policies_per_day"`
	ActionsPerDay    float64 `json:"actions_per_day"`
	PricePerMonthUSD float64 `json:"cloud_price_per_30_days_usd"`
	HistoryEvents    float64 `json:"history_events_per_day"`
	HistoryMiB       float64 `json:"history_mib_per_day"`
	StoreRows        float64 `json:"store_rows_per_day"`
	StoreMiB         float64 `json:"store_mib_per_day"`
	CPUSeconds       float64 `json:"worker_cpu_seconds_per_day"`
	PeakPerSec       float64 `json:"peak_lifecycles_per_sec"`
	PeakAPS          float64 `json:"peak_actions_per_sec"`
	PeakCores        float64 `json:"peak_worker_cores"`
	Workers          int     `json:"workers"`
	WorkerMemMiB     float64 `json:"worker_memory_mib"`
	Shards           int     `json:"history_shards"`
}

// capacityModel is the model for each volume.
type capacityModel struct {
	Inputs capacityInputs `json:"inputs"`
	Rows   []capacityRow  `json:"rows"`
}

// The model's assumptions, stated with it.
const (
	// workerHeadroom: a worker is planned at half the throughput it
	// saturated at, so a burst or a lost worker does not queue callbacks.
	workerHeadroom = 0.5
	// minWorkers: two, so a deploy or a crash never stops delivery.
	minWorkers = 2
	// minShards: a cluster's shard count cannot change later; four is the
	// least deploy/temporal-postgres.yaml configures.
	minShards = 4
)

// modelCapacity computes the rows for each daily volume from in. Every
// lifecycle is a 5-event one; the busiest second carries PeakFactor × the
// day's mean rate.
func modelCapacity(in capacityInputs, volumes []int) capacityModel {
	m := capacityModel{Inputs: in}
	for _, v := range volumes {
		n := float64(v)
		r := capacityRow{PoliciesPerDay: v,
			ActionsPerDay: n * in.ActionsPerLifecycle,
			HistoryEvents: n * in.HistoryEvents,
			HistoryMiB:    n * in.HistoryBytes / (1 << 20),
			StoreRows:     n * in.StoreRows,
			StoreMiB:      n * in.StoreBytes / (1 << 20),
			CPUSeconds:    n * in.CPUSecondsPerLifecyle,
		}
		r.PricePerMonthUSD = r.ActionsPerDay * 30 / 1e6 * in.PricePerMillion
		r.PeakPerSec = n / 86400 * in.PeakFactor
		r.PeakAPS = r.PeakPerSec * in.ActionsPerLifecycle
		r.PeakCores = r.PeakPerSec * in.CPUSecondsPerLifecyle
		r.Workers = minWorkers
		if in.WorkerLifecyclesPerSec > 0 {
			r.Workers = max(minWorkers, int(math.Ceil(r.PeakPerSec/(workerHeadroom*in.WorkerLifecyclesPerSec))))
		}
		r.WorkerMemMiB = float64(r.Workers) * in.WorkerRSSMiB
		r.Shards = minShards
		if in.ShardActionsPerSec > 0 {
			r.Shards = nextPow2(max(minShards, int(math.Ceil(r.PeakAPS/(workerHeadroom*in.ShardActionsPerSec)))))
		}
		m.Rows = append(m.Rows, r)
	}
	return m
}

func nextPow2(n int) int {
	p := 1
	for p < n {
		p <<= 1
	}
	return p
}

// markdown renders the model as the README shows it.
func (m capacityModel) markdown() string {
	var b strings.Builder
	in := m.Inputs
	b.WriteString("| per day | " + joinRows(m.Rows, func(r capacityRow) string { return fmt.Sprintf("%s policies", thousands(float64(r.PoliciesPerDay))) }) + " | from |\n")
	b.WriteString("|---|" + strings.Repeat("---:|", len(m.Rows)) + "---|\n")
	row := func(name, from string, f func(r capacityRow) string) {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", name, joinRows(m.Rows, f), from)
	}
	row("Temporal actions", fmt.Sprintf("%.2f per lifecycle, counted from histories", in.ActionsPerLifecycle),
		func(r capacityRow) string { return thousands(r.ActionsPerDay) })
	row("Temporal Cloud price per 30 days (USD)", fmt.Sprintf("$%.0f per million actions ([pricing](%s), first tier; volume discounts lower it)", in.PricePerMillion, pricingURL),
		func(r capacityRow) string { return fmt.Sprintf("%.2f", r.PricePerMonthUSD) })
	row("history events", fmt.Sprintf("%.1f per lifecycle", in.HistoryEvents), func(r capacityRow) string { return thousands(r.HistoryEvents) })
	row("history bytes (MiB, uncompressed)", fmt.Sprintf("%.0f bytes per lifecycle (protobuf size of its events)", in.HistoryBytes), func(r capacityRow) string { return fmt.Sprintf("%.1f", r.HistoryMiB) })
	row("store rows", fmt.Sprintf("%.1f per lifecycle (policies, events, attempts)", in.StoreRows), func(r capacityRow) string { return thousands(r.StoreRows) })
	row("store bytes (MiB, with indexes)", fmt.Sprintf("%.0f bytes per lifecycle (growth of the database over the measured rounds)", in.StoreBytes), func(r capacityRow) string { return fmt.Sprintf("%.1f", r.StoreMiB) })
	row("worker CPU seconds", fmt.Sprintf("%.3f per lifecycle", in.CPUSecondsPerLifecyle), func(r capacityRow) string { return thousands(r.CPUSeconds) })
	row(fmt.Sprintf("busiest second (×%g the day's mean): lifecycles/s, actions/s", in.PeakFactor), "assumed peak factor",
		func(r capacityRow) string { return fmt.Sprintf("%.2f, %.1f", r.PeakPerSec, r.PeakAPS) })
	row("worker cores busy at the peak", "CPU per lifecycle × peak rate", func(r capacityRow) string { return fmt.Sprintf("%.2f", r.PeakCores) })
	row("workers", fmt.Sprintf("peak ÷ (%.0f%% of one worker's measured %.2f lifecycles/s), at least %d", workerHeadroom*100, in.WorkerLifecyclesPerSec, minWorkers),
		func(r capacityRow) string { return fmt.Sprint(r.Workers) })
	row("worker memory (MiB, all workers)", fmt.Sprintf("%.0f MiB per worker with its workflow cache full", in.WorkerRSSMiB), func(r capacityRow) string { return fmt.Sprintf("%.0f", r.WorkerMemMiB) })
	row("Temporal history shards (self-hosted)", fmt.Sprintf("peak actions/s ÷ (%.0f%% of the %.0f actions/s one shard sustained here), a power of two, at least %d", workerHeadroom*100, in.ShardActionsPerSec, minShards),
		func(r capacityRow) string { return fmt.Sprint(r.Shards) })
	fmt.Fprintf(&b, "\nMeasured here: actions, history events and bytes (from the measured lifecycles' histories), store rows and bytes (the store before and after the saturation rounds), worker CPU and memory (`/proc`), one worker's saturated throughput and one shard's actions/s (the baseline at saturation on a server with %d history shard%s). "+
		"Extrapolated: everything per day is the per-lifecycle figure × the volume (linear: each policy is its own workflow, with no shared state but the store); the peak factor %g is an assumption, not a measurement; "+
		"workers and shards are extrapolated from a 2-CPU host that also runs the server and its database, so they overstate what real hardware needs. "+
		"Temporal Cloud has no shards to choose; a namespace's default limit is %d actions/s ([operating envelope](%s)), and the price is the published first-tier rate, which changes: check it.\n",
		in.ServerShards, map[bool]string{true: "", false: "s"}[in.ServerShards == 1], in.PeakFactor, cloudDefaultAPS, envelopeURL)
	return b.String()
}

func joinRows(rs []capacityRow, f func(capacityRow) string) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = f(r)
	}
	return strings.Join(parts, " | ")
}

// thousands formats v rounded, with commas: 1234567 → "1,234,567".
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", math.Round(v))
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []string
	for len(s) > 3 {
		out = append([]string{s[len(s)-3:]}, out...)
		s = s[:len(s)-3]
	}
	out = append([]string{s}, out...)
	r := strings.Join(out, ",")
	if neg {
		r = "-" + r
	}
	return r
}
