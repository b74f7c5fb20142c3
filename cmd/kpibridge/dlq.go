package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/kpibridge/kpibridge/ingest"
	"github.com/kpibridge/kpibridge/internal/kafkaconn"
)

func registerDLQ(k *kingpin.Application, a *app) []registered {
	dlq := k.Command("dlq", "Inspect and replay the dead-letter topics (<topic>.dlq) that ingest writes invalid messages to.")

	list := dlq.Command("list", "Print every message of a dead-letter topic: reason, where it came from, and why.")
	listTopic := list.Flag("topic", "Dead-letter topic to read, e.g. crm.events.dlq.").Required().String()
	summary := list.Flag("summary", "Print a count by reason and original topic instead of one line per message.").Bool()
	a.addBrokersFlag(list)

	replay := dlq.Command("replay", "Re-produce dead letters to the topic they came from (after the fix is deployed), then print counts by reason and target topic.")
	replayTopic := replay.Flag("topic", "Dead-letter topic to replay, e.g. crm.events.dlq.").Required().String()
	reason := replay.Flag("reason", "Replay only dead letters of this reason (e.g. unknown_currency); default: every reason.").String()
	dryRun := replay.Flag("dry-run", "Read and count, produce nothing.").Bool()
	a.addBrokersFlag(replay)

	return []registered{
		{list.FullCommand(), func(ctx context.Context) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			sec, err := cfg.KafkaSecurity(a.getenv)
			if err != nil {
				return err
			}
			if *summary {
				return a.printDLQSummary(ctx, cfg.Kafka.Brokers, sec, *listTopic)
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			n := 0
			err = ingest.ReadDLQ(ctx, cfg.Kafka.Brokers, sec, *listTopic, func(d ingest.DLQMessage) error {
				if n++; n == 1 {
					fmt.Fprintln(w, "PARTITION\tOFFSET\tREASON\tORIGINAL\tORIGINAL TIME\tKEY\tDETAIL")
				}
				detail := d.Detail
				if d.Field != "" {
					detail = d.Field + ": " + detail
				}
				fmt.Fprintf(w, "%d\t%d\t%s\t%s/%d:%d\t%s\t%s\t%s\n", d.Partition, d.Offset, d.Reason, d.OriginalTopic, d.OriginalPartition,
					d.OriginalOffset, formatTime(d.OriginalTime), strconv.Quote(string(d.Key)), detail)
				return nil
			})
			w.Flush()
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%d dead letters in %s\n", n, *listTopic)
			return nil
		}},
		{replay.FullCommand(), func(ctx context.Context) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			sec, err := cfg.KafkaSecurity(a.getenv)
			if err != nil {
				return err
			}
			s, err := ingest.ReplayDLQ(ctx, ingest.ReplayOptions{Brokers: cfg.Kafka.Brokers, Security: sec, Topic: *replayTopic, Reason: *reason, DryRun: *dryRun})
			a.printReplaySummary(s)
			return err
		}},
	}
}

func (a *app) printDLQSummary(ctx context.Context, brokers []string, sec *kafkaconn.Security, topic string) error {
	type key struct{ reason, original string }
	counts := map[key]int{}
	n := 0
	err := ingest.ReadDLQ(ctx, brokers, sec, topic, func(d ingest.DLQMessage) error {
		n++
		counts[key{d.Reason, d.OriginalTopic}]++
		return nil
	})
	if err != nil {
		return err
	}
	keys := make([]key, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].original != keys[j].original {
			return keys[i].original < keys[j].original
		}
		return keys[i].reason < keys[j].reason
	})
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "REASON\tORIGINAL TOPIC\tMESSAGES")
	for _, k := range keys {
		fmt.Fprintf(w, "%s\t%s\t%d\n", k.reason, k.original, counts[k])
	}
	w.Flush()
	fmt.Fprintf(a.stdout, "%d dead letters in %s\n", n, topic)
	return nil
}

func (a *app) printReplaySummary(s ingest.ReplaySummary) {
	verb := "replayed"
	if s.DryRun {
		verb = "would replay"
	}
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "REASON\tTARGET TOPIC\t%s\n", verb)
	for _, k := range s.Keys() {
		fmt.Fprintf(w, "%s\t%s\t%d\n", k.Reason, k.TargetTopic, s.Replayed[k])
	}
	w.Flush()
	fmt.Fprintf(a.stdout, "read %d dead letters from %s; %s %d", s.Read, s.Topic, verb, s.Total())
	filtered := 0
	for _, n := range s.Filtered {
		filtered += n
	}
	if filtered > 0 {
		fmt.Fprintf(a.stdout, "; skipped %d of other reasons", filtered)
	}
	if s.NoTarget > 0 {
		fmt.Fprintf(a.stdout, "; %d without a kpibridge-original-topic header cannot be replayed", s.NoTarget)
	}
	fmt.Fprintln(a.stdout)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
