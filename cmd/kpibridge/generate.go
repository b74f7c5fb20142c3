package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/kpibridge/kpibridge/events"
	"github.com/kpibridge/kpibridge/generate"
)

func registerGenerate(k *kingpin.Application, a *app) (string, action) {
	cmd := k.Command("generate", "Produce a realistic, seeded stream of every contract v1 event type (with invalid and duplicate messages) to Kafka or NDJSON files, then print a JSON summary of exact counts.")
	a.addBrokersFlag(cmd)
	def := generate.DefaultConfig()
	seed := cmd.Flag("seed", "Seed of every random choice. The same --seed and --end (and other flags) give byte-identical output.").Default(fmt.Sprint(def.Seed)).Int64()
	customers := cmd.Flag("customers", "Number of simulated customers.").Default(fmt.Sprint(def.Customers)).Int()
	days := cmd.Flag("days", "Number of simulated days, ending with --end.").Default(fmt.Sprint(def.Days)).Int()
	end := cmd.Flag("end", "Last simulated day, YYYY-MM-DD (default: yesterday, UTC, so that no event lies in the future). Pin it for reproducible output: the default moves every day.").PlaceHolder("YYYY-MM-DD").String()
	campaigns := cmd.Flag("campaigns", "Number of marketing campaigns across the channels.").Default(fmt.Sprint(def.Campaigns)).Int()
	invalid := cmd.Flag("invalid-rate", "Invalid messages per valid event, spread evenly over every dead-letter reason.").Default(fmt.Sprint(def.InvalidRate)).Float64()
	duplicates := cmd.Flag("duplicate-rate", "Exact re-sends of an earlier valid message per valid event.").Default(fmt.Sprint(def.DuplicateRate)).Float64()
	currency := cmd.Flag("currency", "Currency mix of customers as CODE=WEIGHT pairs, e.g. EUR=70,USD=20,GBP=10; each must be the reporting currency or in events.currency_rates (default: 70 % reporting currency, the rest over the configured rates).").String()
	var outSet bool
	out := cmd.Flag("out", "Write NDJSON (one message value per line) to this file instead of Kafka; {topic} in the path writes one file per topic (replay with kcat -P -b host:port -t crm.events -l crm.events.ndjson); - writes to stdout (the summary then goes to stderr).").PlaceHolder("PATH").IsSetByUser(&outSet).String()
	crmTopic := cmd.Flag("crm-topic", "Topic of CRM events (default: the first of kafka.topics when it lists two, else crm.events).").String()
	campaignTopic := cmd.Flag("campaign-topic", "Topic of campaign events (default: the second of kafka.topics when it lists two, else campaign.events).").String()
	compression := cmd.Flag("compression", "Kafka compression: none, gzip, snappy, lz4, zstd.").Default(generate.DefaultCompression).Enum("none", "gzip", "snappy", "lz4", "zstd")
	return cmd.FullCommand(), func(ctx context.Context) error {
		cfg, err := a.config()
		if err != nil {
			return err
		}
		now := time.Now().UTC()
		gc := generate.Config{
			Seed:              *seed,
			Customers:         *customers,
			Days:              *days,
			Campaigns:         *campaigns,
			InvalidRate:       *invalid,
			DuplicateRate:     *duplicates,
			ReportingCurrency: cfg.Events.ReportingCurrency,
			Rates:             cfg.Events.CurrencyRates,
			CRMTopic:          events.TopicCRM,
			CampaignTopic:     events.TopicCampaign,
			BatchSize:         def.BatchSize,
			Now:               now,
		}
		if *end == "" {
			gc.End = time.Date(now.Year(), now.Month(), now.Day()-1, 0, 0, 0, 0, time.UTC)
		} else if gc.End, err = time.Parse(time.DateOnly, *end); err != nil {
			return fmt.Errorf("--end: want YYYY-MM-DD, got %q", *end)
		}
		if gc.CurrencyMix, err = generate.ParseCurrencyMix(*currency); err != nil {
			return err
		}
		if len(cfg.Kafka.Topics) == 2 {
			gc.CRMTopic, gc.CampaignTopic = cfg.Kafka.Topics[0], cfg.Kafka.Topics[1]
		}
		if *crmTopic != "" {
			gc.CRMTopic = *crmTopic
		}
		if *campaignTopic != "" {
			gc.CampaignTopic = *campaignTopic
		}
		if err := gc.Validate(); err != nil {
			return err
		}

		if outSet && *out == "" {
			// kingpin reads a lone "-" as an empty value; never let
			// --out - fall through to producing to Kafka.
			*out = "-"
		}
		var sink generate.Sink
		summaryTo := a.stdout
		if *out != "" {
			if *out == "-" {
				summaryTo = a.stderr
			}
			sink, err = generate.NewFileSink(*out, a.stdout)
		} else {
			sec, serr := cfg.KafkaSecurity(a.getenv)
			if serr != nil {
				return serr
			}
			sink, err = generate.NewKafkaSink(generate.KafkaConfig{Brokers: cfg.Kafka.Brokers, Compression: *compression, Security: sec})
		}
		if err != nil {
			return err
		}
		sum, err := generate.Run(ctx, gc, sink, a.stderr)
		if cerr := sink.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		return writeSummary(summaryTo, sum)
	}
}

func writeSummary(w io.Writer, s generate.Summary) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
