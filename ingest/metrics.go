package ingest

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kpibridge/kpibridge/events"
)

// Outcomes of a consumed message, the values of the outcome label.
const (
	OutcomeValid     = "valid"
	OutcomeInvalid   = "invalid"
	OutcomeDuplicate = "duplicate"
)

// Metrics instruments the ingest role. Labels are bounded: topic (configured
// topics), outcome (3 values), reason (events.Reasons), source (producing
// systems, a handful per deployment), target (clickhouse, kafka), partition
// (the partitions of the configured topics).
type Metrics struct {
	Messages       *prometheus.CounterVec
	DeadLetters    *prometheus.CounterVec
	DLQWrites      *prometheus.CounterVec
	DLQFailures    *prometheus.CounterVec
	BatchRows      prometheus.Histogram
	InsertDuration *prometheus.HistogramVec
	InsertErrors   *prometheus.CounterVec
	Retries        *prometheus.CounterVec
	Commits        prometheus.Counter
	CommitErrors   prometheus.Counter
	CommitsSkipped prometheus.Counter
	Rebalances     prometheus.Counter
	Assigned       *prometheus.GaugeVec
	LastEventTime  *prometheus.GaugeVec
	LastIngestTime prometheus.Gauge
	ConsumerLag    *prometheus.GaugeVec
}

// NewMetrics registers the ingest metrics with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer, topics []string) *Metrics {
	m := &Metrics{
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kpibridge_ingest_messages_total", Help: "Messages consumed, by topic and outcome (valid, invalid, duplicate).",
		}, []string{"topic", "outcome"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kpibridge_ingest_dead_letters_total", Help: "Messages dead-lettered, by topic and reason.",
		}, []string{"topic", "reason"}),
		DLQWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kpibridge_ingest_dlq_writes_total", Help: "Messages written to the Kafka dead-letter topics, by DLQ topic.",
		}, []string{"topic"}),
		DLQFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kpibridge_ingest_dlq_failures_total",
			Help: "Dead letters not published to their DLQ topic (kept in ClickHouse dead_letters only), by DLQ topic.",
		}, []string{"topic"}),
		BatchRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kpibridge_ingest_batch_rows", Help: "Messages per flushed batch.",
			Buckets: prometheus.ExponentialBuckets(10, 4, 8),
		}),
		InsertDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kpibridge_ingest_insert_duration_seconds", Help: "Latency of successful ClickHouse inserts, by table.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"table"}),
		InsertErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kpibridge_ingest_insert_errors_total", Help: "Failed ClickHouse inserts (each is retried), by table.",
		}, []string{"table"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kpibridge_ingest_retries_total", Help: "Write retries after a failure, by target (clickhouse, kafka).",
		}, []string{"target"}),
		Commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kpibridge_ingest_offset_commits_total", Help: "Successful offset commits.",
		}),
		CommitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kpibridge_ingest_offset_commit_errors_total", Help: "Failed offset commits (the messages will be re-delivered and deduplicated).",
		}),
		CommitsSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kpibridge_ingest_offset_commits_skipped_total",
			Help: "Batches whose offsets were not committed because a rebalance ended the group generation they were fetched in and they were stored after its grace (the partitions' owners read on from the last commit).",
		}),
		Rebalances: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kpibridge_ingest_rebalances_total", Help: "Consumer group generations this process has joined (the first join counts).",
		}),
		Assigned: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kpibridge_ingest_assigned_partitions", Help: "Partitions this process holds in the current consumer group generation, by topic.",
		}, []string{"topic"}),
		LastEventTime: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kpibridge_ingest_last_event_timestamp_seconds", Help: "occurred_at of the newest stored event, by source.",
		}, []string{"source"}),
		LastIngestTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kpibridge_ingest_last_flush_timestamp_seconds", Help: "When a batch was last stored and committed.",
		}),
		ConsumerLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kpibridge_ingest_consumer_lag_messages",
			Help: "Messages not yet committed by the ingest consumer group (high watermark - committed offset), by topic and partition; the same whole-group figure from every ingest process.",
		}, []string{"topic", "partition"}),
	}
	for _, t := range topics {
		m.Assigned.WithLabelValues(t)
		for _, o := range []string{OutcomeValid, OutcomeInvalid, OutcomeDuplicate} {
			m.Messages.WithLabelValues(t, o)
		}
		for _, r := range events.Reasons() {
			m.DeadLetters.WithLabelValues(t, string(r))
		}
	}
	// Failure counters start at 0, so dashboards show "no failures", not "no data".
	for _, target := range []string{"clickhouse", "kafka"} {
		m.Retries.WithLabelValues(target)
	}
	for _, table := range []string{"events", "dead_letters", "duplicates"} {
		m.InsertErrors.WithLabelValues(table)
	}
	if reg != nil {
		reg.MustRegister(m.Messages, m.DeadLetters, m.DLQWrites, m.DLQFailures, m.BatchRows, m.InsertDuration, m.InsertErrors,
			m.Retries, m.Commits, m.CommitErrors, m.CommitsSkipped, m.Rebalances, m.Assigned, m.LastEventTime, m.LastIngestTime, m.ConsumerLag)
	}
	return m
}
