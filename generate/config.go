package generate

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kpibridge/kpibridge/events"
)

// Config says what to simulate. The same Config (Seed and End included)
// always yields the same messages, byte for byte.
type Config struct {
	// Seed seeds every random choice (flag --seed).
	Seed int64
	// Customers is how many people the simulation follows (flag --customers).
	Customers int
	// Days is how many days are simulated, ending with End (flag --days).
	Days int
	// End is the last simulated day; only its UTC date counts (flag --end).
	// Every occurred_at lies in [End-Days+1 00:00Z, End+1 00:00Z).
	End time.Time
	// Campaigns is how many marketing campaigns run (flag --campaigns).
	Campaigns int
	// InvalidRate is how many invalid messages are sent per valid event,
	// spread evenly over every events.Reason (flag --invalid-rate).
	InvalidRate float64
	// DuplicateRate is how many exact re-sends of an earlier valid message
	// are sent per valid event (flag --duplicate-rate).
	DuplicateRate float64
	// ReportingCurrency and Rates must match the decoder configuration
	// (events.reporting_currency, events.currency_rates) so that valid
	// messages only name currencies the decoder knows.
	ReportingCurrency string
	// Rates converts an amount in a currency into the reporting currency.
	Rates map[string]float64
	// CurrencyMix is the share of customers paying in each currency (flag
	// --currency); nil picks a mix over the reporting currency and Rates.
	CurrencyMix []CurrencyShare
	// CRMTopic and CampaignTopic are where the two kinds of events go.
	CRMTopic, CampaignTopic string
	// BatchSize is how many records each Sink.Write receives at most. The
	// default, 8000, was the fastest into the embedded broker (2000 took
	// 30 % longer, 20000 20 % longer).
	BatchSize int
	// Now, when set, is the wall clock used only to refuse an End whose
	// events would lie in the future; it never reaches the data.
	Now time.Time
}

// CurrencyShare is the weight of one currency in Config.CurrencyMix.
type CurrencyShare struct {
	// Code is an ISO 4217 code: the reporting currency or one with a rate.
	Code string
	// Weight is relative to the other shares' weights.
	Weight float64
}

// DefaultConfig returns the documented defaults: seed 42, 10000 customers,
// 90 days, 24 campaigns, 1 % invalid and 5 % duplicate messages, the
// currencies of the default kpibridge configuration (EUR reporting; USD,
// GBP, CHF and SEK rates) and the default topics. End has no default: the
// command line uses yesterday (UTC). The command line passes the configured
// currencies and topics instead; this package does not import config, so
// that ingest and its tests can import it.
func DefaultConfig() Config {
	return Config{
		Seed:              42,
		Customers:         10000,
		Days:              90,
		Campaigns:         24,
		InvalidRate:       0.01,
		DuplicateRate:     0.05,
		ReportingCurrency: "EUR",
		Rates:             map[string]float64{"USD": 0.92, "GBP": 1.17, "CHF": 1.05, "SEK": 0.087},
		CRMTopic:          events.TopicCRM,
		CampaignTopic:     events.TopicCampaign,
		BatchSize:         8000,
	}
}

// Limits of Config values.
const (
	maxCustomers = 50_000_000
	maxDays      = 3660
	maxCampaigns = 1000
	maxRate      = 0.5
	maxBatchSize = 1_000_000
)

// Validate checks the config; each error names the flag to fix.
func (c Config) Validate() error {
	var errs []error
	if c.Customers < 1 || c.Customers > maxCustomers {
		errs = append(errs, fmt.Errorf("--customers: must be between 1 and %d, got %d", maxCustomers, c.Customers))
	}
	if c.Days < 1 || c.Days > maxDays {
		errs = append(errs, fmt.Errorf("--days: must be between 1 and %d, got %d", maxDays, c.Days))
	}
	if c.Campaigns < 1 || c.Campaigns > maxCampaigns {
		errs = append(errs, fmt.Errorf("--campaigns: must be between 1 and %d, got %d", maxCampaigns, c.Campaigns))
	}
	if !(c.InvalidRate >= 0 && c.InvalidRate <= maxRate) {
		errs = append(errs, fmt.Errorf("--invalid-rate: must be between 0 and %v, got %v", maxRate, c.InvalidRate))
	}
	if !(c.DuplicateRate >= 0 && c.DuplicateRate <= maxRate) {
		errs = append(errs, fmt.Errorf("--duplicate-rate: must be between 0 and %v, got %v", maxRate, c.DuplicateRate))
	}
	end := c.End.UTC()
	switch {
	case c.End.IsZero():
		errs = append(errs, errors.New("--end: required (the last simulated day, YYYY-MM-DD)"))
	case end.Year() > 2100:
		errs = append(errs, fmt.Errorf("--end: must be no later than 2100-12-31, got %s", end.Format(time.DateOnly)))
	case c.Days >= 1 && c.Days <= maxDays && end.AddDate(0, 0, 1-c.Days).Year() < 1971:
		errs = append(errs, fmt.Errorf("--end: with --days %d the first day would be %s; start in 1971 or later", c.Days, end.AddDate(0, 0, 1-c.Days).Format(time.DateOnly)))
	case !c.Now.IsZero() && !day(end).Before(day(c.Now.UTC())):
		errs = append(errs, fmt.Errorf("--end: must be before today (%s UTC) so that no event lies in the future, got %s", c.Now.UTC().Format(time.DateOnly), end.Format(time.DateOnly)))
	}
	if !isCurrency(c.ReportingCurrency) {
		errs = append(errs, fmt.Errorf("events.reporting_currency: must be 3 upper-case letters, got %q", c.ReportingCurrency))
	}
	for _, code := range sortedKeys(c.Rates) {
		if r := c.Rates[code]; !isCurrency(code) || !(r > 0) || math.IsInf(r, 0) {
			errs = append(errs, fmt.Errorf("events.currency_rates.%s: must be a 3-letter code with a finite rate > 0, got %v", code, r))
		}
	}
	for _, s := range c.CurrencyMix {
		if s.Code != c.ReportingCurrency && c.Rates[s.Code] == 0 {
			errs = append(errs, fmt.Errorf("--currency: %s is neither the reporting currency (%s) nor in events.currency_rates, so every amount in it would be a dead letter", s.Code, c.ReportingCurrency))
		}
		if !(s.Weight > 0) || math.IsInf(s.Weight, 0) {
			errs = append(errs, fmt.Errorf("--currency: weight of %s must be a finite number > 0, got %v", s.Code, s.Weight))
		}
	}
	for _, t := range []struct{ flag, topic string }{{"--crm-topic", c.CRMTopic}, {"--campaign-topic", c.CampaignTopic}} {
		if t.topic == "" {
			errs = append(errs, fmt.Errorf("%s: required", t.flag))
		}
	}
	if c.CRMTopic != "" && c.CRMTopic == c.CampaignTopic {
		errs = append(errs, fmt.Errorf("--campaign-topic: must differ from --crm-topic, both are %q", c.CRMTopic))
	}
	if c.BatchSize < 1 || c.BatchSize > maxBatchSize {
		errs = append(errs, fmt.Errorf("batch size: must be between 1 and %d, got %d", maxBatchSize, c.BatchSize))
	}
	return errors.Join(errs...)
}

// ParseCurrencyMix parses the --currency flag: comma-separated CODE=WEIGHT
// pairs such as "EUR=70,USD=20,GBP=10". Weights are relative.
func ParseCurrencyMix(s string) ([]CurrencyShare, error) {
	var mix []CurrencyShare
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		code, w, ok := strings.Cut(part, "=")
		code = strings.ToUpper(strings.TrimSpace(code))
		if !ok {
			return nil, fmt.Errorf("--currency: %q must be CODE=WEIGHT, such as EUR=70", part)
		}
		if !isCurrency(code) {
			return nil, fmt.Errorf("--currency: %q is not a 3-letter currency code", code)
		}
		weight, err := strconv.ParseFloat(strings.TrimSpace(w), 64)
		if err != nil || !(weight > 0) || math.IsInf(weight, 0) {
			return nil, fmt.Errorf("--currency: weight of %s must be a number > 0, got %q", code, w)
		}
		if slices.ContainsFunc(mix, func(c CurrencyShare) bool { return c.Code == code }) {
			return nil, fmt.Errorf("--currency: %s appears twice", code)
		}
		mix = append(mix, CurrencyShare{Code: code, Weight: weight})
	}
	return mix, nil
}

func isCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// day truncates t to its UTC midnight.
func day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
