package ingest

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/internal/kafkaconn"
	"github.com/kpibridge/kpibridge/internal/lograte"
)

// NewKafkaSource returns a consumer-group member over topics, connecting
// as sec says (nil: plain text). Offsets are
// committed only by the Ingester (CommitInterval 0: synchronous, explicit);
// a new group starts from the earliest offset so nothing produced before the
// first start is skipped.
//
// Fetches return as soon as a partition has data (MinBytes 1) and at most
// 4 MiB; MaxWait is also kafka-go's read deadline for a fetch response, and
// at 250 ms a busy broker answering a dozen partitions at once missed it,
// which showed as "i/o timeout" warnings and reconnects on every start.
//
// sessionTimeout (ingest.session_timeout) is how long a member that stopped
// heartbeating (killed, hung, cut off) keeps its partitions before the
// group hands them to another: the failover time after a kill -9.
func NewKafkaSource(brokers, topics []string, groupID string, sessionTimeout time.Duration, sec *kafkaconn.Security, logger *slog.Logger) *kafka.Reader {
	lim := lograte.New(logger, time.Minute)
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:                brokers,
		Dialer:                 sec.Dialer(),
		GroupID:                groupID,
		GroupTopics:            topics,
		MinBytes:               1,
		MaxBytes:               4 << 20,
		MaxWait:                time.Second,
		QueueCapacity:          10000,
		ReadBatchTimeout:       10 * time.Second,
		CommitInterval:         0,
		StartOffset:            kafka.FirstOffset,
		HeartbeatInterval:      min(3*time.Second, sessionTimeout/3),
		SessionTimeout:         sessionTimeout,
		RebalanceTimeout:       30 * time.Second,
		JoinGroupBackoff:       2 * time.Second,
		WatchPartitionChanges:  true,
		PartitionWatchInterval: 10 * time.Second,
		// While Kafka is unreachable the reader reports every retry: one line
		// per kind of failure a minute, with a count, is enough.
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			lim.Log(slog.LevelWarn, msg, "kafka consumer", "detail", fmt.Sprintf(msg, args...))
		}),
	})
}
