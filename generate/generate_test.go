package generate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/events"
)

var testEnd = time.Date(2025, 3, 31, 0, 0, 0, 0, time.UTC)

// seed lets the tests explore other simulations: go test ./generate -args -seed 7.
var seed = flag.Int64("seed", 42, "seed of the simulations the tests check")

// smallConfig is a run small enough for unit tests that still reaches
// every event type.
func smallConfig() Config {
	cfg := DefaultConfig()
	cfg.Seed = *seed
	cfg.End = testEnd
	cfg.Customers = 600
	cfg.Days = 45
	cfg.BatchSize = 500
	return cfg
}

// memSink keeps copies of every record.
type memSink struct{ recs []Record }

func (s *memSink) Write(_ context.Context, recs []Record) error {
	for _, r := range recs {
		r.Key = bytes.Clone(r.Key)
		r.Value = bytes.Clone(r.Value)
		s.recs = append(s.recs, r)
	}
	return nil
}

func (s *memSink) Close() error { return nil }

type discardSink struct{}

func (discardSink) Write(context.Context, []Record) error { return nil }
func (discardSink) Close() error                          { return nil }

func run(t testing.TB, cfg Config) ([]Record, Summary) {
	t.Helper()
	var s memSink
	sum, err := Run(context.Background(), cfg, &s, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return s.recs, sum
}

// decoderFor is a decoder configured like the generator: same currencies,
// and a clock on the day after the last simulated day.
func decoderFor(t testing.TB, cfg Config) *events.Decoder {
	t.Helper()
	d, err := events.NewDecoder(events.Config{
		EmailHashKey:      []byte("generate-test-key"),
		ReportingCurrency: cfg.ReportingCurrency,
		Rates:             cfg.Rates,
		Now:               func() time.Time { return day(cfg.End).AddDate(0, 0, 1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// reasonOf decodes v and returns "" or the reason it is refused for.
func reasonOf(t testing.TB, d *events.Decoder, v []byte) string {
	t.Helper()
	_, err := d.Decode(v)
	if err == nil {
		return ""
	}
	var e *events.Error
	if !errors.As(err, &e) {
		t.Fatalf("Decode returned %T %v, want *events.Error", err, err)
	}
	return string(e.Reason)
}

// writeFiles runs cfg into per-topic files and returns their contents.
func writeFiles(t *testing.T, cfg Config) (map[string][]byte, Summary) {
	t.Helper()
	dir := t.TempDir()
	sink, err := NewFileSink(filepath.Join(dir, "out", "{topic}.ndjson"), nil)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := Run(context.Background(), cfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, topic := range []string{cfg.CRMTopic, cfg.CampaignTopic} {
		b, err := os.ReadFile(filepath.Join(dir, "out", topic+".ndjson"))
		if err != nil {
			t.Fatal(err)
		}
		files[topic] = b
	}
	return files, sum
}

func TestDeterminism(t *testing.T) {
	base := smallConfig()
	baseFiles, _ := writeFiles(t, base)
	tests := []struct {
		name   string
		change func(*Config)
		same   bool
	}{
		{"same seed and end", func(*Config) {}, true},
		{"other seed", func(c *Config) { c.Seed++ }, false},
		{"other end", func(c *Config) { c.End = c.End.AddDate(0, 0, -1) }, false},
		{"end with a time of day", func(c *Config) { c.End = c.End.Add(17 * time.Hour) }, true},
		{"other batch size", func(c *Config) { c.BatchSize = 7 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.change(&cfg)
			files, _ := writeFiles(t, cfg)
			for topic, b := range files {
				if same := bytes.Equal(b, baseFiles[topic]); same != tt.same {
					t.Errorf("%s: identical bytes = %v, want %v", topic, same, tt.same)
				}
			}
		})
	}
}

// The valid events must not depend on the noise: the same journeys with or
// without invalid and duplicate messages.
func TestValidStreamIndependentOfNoise(t *testing.T) {
	quiet := smallConfig()
	quiet.InvalidRate, quiet.DuplicateRate = 0, 0
	noisy := smallConfig()
	noisy.InvalidRate, noisy.DuplicateRate = 0.2, 0.2
	a, sa := run(t, quiet)
	b, sb := run(t, noisy)
	var bValid []Record
	for _, r := range b {
		if r.Valid && !r.Duplicate {
			bValid = append(bValid, r)
		}
	}
	if len(a) != len(bValid) || sa.Valid != sb.Valid {
		t.Fatalf("%d valid events without noise, %d with (summaries %d, %d)", len(a), len(bValid), sa.Valid, sb.Valid)
	}
	for i := range a {
		if !bytes.Equal(a[i].Value, bValid[i].Value) {
			t.Fatalf("valid event %d differs:\n%s\n%s", i, a[i].Value, bValid[i].Value)
		}
	}
	if sa.Total != sa.Valid || sb.Duplicates == 0 {
		t.Errorf("quiet run: total %d valid %d; noisy run duplicates %d", sa.Total, sa.Valid, sb.Duplicates)
	}
}

// The summary must count exactly what the files hold, as a consumer that
// decodes every line and dedupes by event_id would count it.
func TestSummaryCountsWhatWasWritten(t *testing.T) {
	cfg := smallConfig()
	cfg.Customers, cfg.Days = 3000, 90 // enough for every type, refunds and churn included
	cfg.InvalidRate, cfg.DuplicateRate = 0.05, 0.1
	files, sum := writeFiles(t, cfg)
	dec := decoderFor(t, cfg)

	topics := map[string]map[string]int64{}
	messages := map[string]int64{}
	invalid := map[string]int64{}
	for _, r := range events.Reasons() {
		invalid[string(r)] = 0
	}
	var valid, duplicates, total int64
	seen := map[string]bool{}
	for _, topic := range []string{cfg.CRMTopic, cfg.CampaignTopic} {
		topics[topic] = map[string]int64{}
		types := events.CRMTypes
		if topic == cfg.CampaignTopic {
			types = events.CampaignTypes
		}
		for _, typ := range types {
			topics[topic][string(typ)] = 0
		}
		sc := bufio.NewScanner(bytes.NewReader(files[topic]))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			total++
			messages[topic]++
			ev, err := dec.Decode(sc.Bytes())
			if err != nil {
				var e *events.Error
				if !errors.As(err, &e) {
					t.Fatal(err)
				}
				invalid[string(e.Reason)]++
				continue
			}
			if seen[ev.EventID] {
				duplicates++
				continue
			}
			seen[ev.EventID] = true
			valid++
			topics[topic][string(ev.Type)]++
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"total", total, sum.Total},
		{"valid", valid, sum.Valid},
		{"duplicates", duplicates, sum.Duplicates},
		{"messages", messages, sum.Messages},
		{"topics", topics, sum.Topics},
		{"invalid", invalid, sum.Invalid},
	} {
		g, _ := json.Marshal(c.got)
		w, _ := json.Marshal(c.want)
		if !bytes.Equal(g, w) {
			t.Errorf("%s in the files: %s; summary says %s", c.name, g, w)
		}
	}
	for topic, counts := range sum.Topics {
		for typ, n := range counts {
			if n == 0 {
				t.Errorf("%s: no valid %s event", topic, typ)
			}
		}
	}
	if sum.Start != "2025-01-01" || sum.End != "2025-03-31" || sum.Days != 90 || sum.Customers != 3000 || sum.Seed != *seed {
		t.Errorf("summary header %+v", sum)
	}
}

// Every record says correctly whether the real decoder accepts it, and why not.
func TestRecordsAgreeWithDecoder(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
	}{
		{"defaults", func(*Config) {}},
		{"many invalid", func(c *Config) { c.InvalidRate, c.DuplicateRate = 0.5, 0.1 }},
		{"USD reporting, no rates", func(c *Config) {
			c.ReportingCurrency, c.Rates, c.InvalidRate = "USD", nil, 0.3
		}},
		{"currency mix", func(c *Config) {
			c.CurrencyMix = []CurrencyShare{{"SEK", 1}, {"CHF", 1}, {"EUR", 1}}
			c.InvalidRate = 0.3
		}},
		{"one campaign, one day", func(c *Config) { c.Campaigns, c.Days, c.InvalidRate = 1, 1, 0.5 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := smallConfig()
			tt.change(&cfg)
			recs, sum := run(t, cfg)
			dec := decoderFor(t, cfg)
			for _, r := range recs {
				got := reasonOf(t, dec, r.Value)
				if got != r.Reason || (got == "") != r.Valid {
					t.Fatalf("record says valid=%v reason=%q, decoder says %q:\n%s", r.Valid, r.Reason, got, r.Value)
				}
				if bytes.IndexByte(r.Value, '\n') >= 0 {
					t.Fatalf("value holds a newline, which breaks NDJSON: %q", r.Value)
				}
				if !r.Valid {
					continue
				}
				var m events.Message
				if err := json.Unmarshal(r.Value, &m); err != nil {
					t.Fatal(err)
				}
				if m.EventID != r.EventID || m.Type != r.Type || string(r.Key) != m.Identity.Key() || r.Topic != topicFor(cfg, m.Type) {
					t.Fatalf("record (id %s, type %s, key %s, topic %s) does not match its message:\n%s", r.EventID, r.Type, r.Key, r.Topic, r.Value)
				}
			}
			if sum.Total != int64(len(recs)) {
				t.Errorf("summary total %d, %d records", sum.Total, len(recs))
			}
		})
	}
}

func topicFor(cfg Config, t events.Type) string {
	if t.Topic() == events.TopicCRM {
		return cfg.CRMTopic
	}
	return cfg.CampaignTopic
}

func TestEveryReasonAppearsEvenly(t *testing.T) {
	cfg := smallConfig()
	cfg.Customers, cfg.Days, cfg.InvalidRate = 200, 14, 0.05
	recs, sum := run(t, cfg)
	var lo, hi int64 = 1 << 62, 0
	for _, r := range events.Reasons() {
		n := sum.Invalid[string(r)]
		lo, hi = min(lo, n), max(hi, n)
	}
	if lo == 0 || hi-lo > 1 {
		t.Errorf("invalid counts by reason %v: want every reason, evenly", sum.Invalid)
	}
	// Each reason comes in more than one variant (as told apart by the
	// decoder's field and first words of detail).
	cfg.InvalidRate = 0.5
	recs, _ = run(t, cfg)
	variants := map[string]map[string]bool{}
	dec := decoderFor(t, cfg)
	for _, r := range recs {
		if r.Valid {
			continue
		}
		_, err := dec.Decode(r.Value)
		var e *events.Error
		errors.As(err, &e)
		if variants[r.Reason] == nil {
			variants[r.Reason] = map[string]bool{}
		}
		variants[r.Reason][e.Field+": "+firstWords(e.Detail)] = true
	}
	for reason, v := range variants {
		if len(v) < 2 || reason != "missing_identity" && len(v) < 3 {
			t.Errorf("%s: only %d variant(s): %v", reason, len(v), slicesOf(v))
		}
	}
}

func firstWords(s string) string {
	f := strings.Fields(s)
	return strings.Join(f[:min(3, len(f))], " ")
}

func slicesOf(m map[string]bool) []string {
	var out []string
	for k := range maps.Keys(m) {
		out = append(out, k)
	}
	return out
}

func TestRunErrors(t *testing.T) {
	boom := errors.New("disk full")
	t.Run("sink error", func(t *testing.T) {
		_, err := Run(context.Background(), smallConfig(), failingSink{boom}, nil)
		if !errors.Is(err, boom) {
			t.Fatalf("Run = %v, want the sink's error", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := Run(ctx, smallConfig(), discardSink{}, nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
	})
	t.Run("invalid config", func(t *testing.T) {
		cfg := smallConfig()
		cfg.Days = 0
		_, err := Run(context.Background(), cfg, discardSink{}, nil)
		if err == nil || !strings.Contains(err.Error(), "--days") {
			t.Fatalf("Run = %v, want an error naming --days", err)
		}
	})
	t.Run("no progress on a short run", func(t *testing.T) {
		var progress bytes.Buffer
		if _, err := Run(context.Background(), smallConfig(), discardSink{}, &progress); err != nil {
			t.Fatal(err)
		}
		if progress.Len() != 0 {
			t.Errorf("progress on a sub-second run: %q", progress.String())
		}
	})
}

type failingSink struct{ err error }

func (s failingSink) Write(context.Context, []Record) error { return s.err }
func (s failingSink) Close() error                          { return nil }

func TestFileSink(t *testing.T) {
	recs := []Record{
		{Topic: "a", Value: []byte(`{"n":1}`)},
		{Topic: "b", Value: []byte(`{"n":2}`)},
		{Topic: "a", Value: []byte(`{"n":3}`)},
	}
	dir := t.TempDir()
	tests := []struct {
		name  string
		path  string
		files map[string]string // file → content; "-" is stdout
	}{
		{"per topic", filepath.Join(dir, "x", "{topic}.ndjson"), map[string]string{
			filepath.Join(dir, "x", "a.ndjson"): "{\"n\":1}\n{\"n\":3}\n",
			filepath.Join(dir, "x", "b.ndjson"): "{\"n\":2}\n",
		}},
		{"one file", filepath.Join(dir, "all.ndjson"), map[string]string{
			filepath.Join(dir, "all.ndjson"): "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n",
		}},
		{"stdout", "-", map[string]string{"-": "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout bytes.Buffer
			s, err := NewFileSink(tt.path, &stdout)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Write(context.Background(), recs); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			for file, want := range tt.files {
				got := stdout.String()
				if file != "-" {
					b, err := os.ReadFile(file)
					if err != nil {
						t.Fatal(err)
					}
					got = string(b)
				}
				if got != want {
					t.Errorf("%s: %q, want %q", file, got, want)
				}
			}
		})
	}
	if _, err := NewFileSink(filepath.Join(dir, "f", "{topic}"), nil); err != nil {
		t.Fatal(err)
	}
	s, _ := NewFileSink(filepath.Join(dir, "missing\x00dir", "{topic}"), nil)
	if err := s.Write(context.Background(), recs); err == nil {
		t.Error("Write to an impossible path succeeded")
	}
}

func BenchmarkGenerate(b *testing.B) {
	cfg := DefaultConfig() // 10000 customers × 90 days
	cfg.End = testEnd
	var n int64
	for b.Loop() {
		s, err := Run(context.Background(), cfg, discardSink{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		n += s.Total
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(n)/float64(b.N), "events/op")
}
