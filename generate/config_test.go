package generate

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string // substring; "" means valid
	}{
		{"small config", func(*Config) {}, ""},
		{"no customers", func(c *Config) { c.Customers = 0 }, "--customers: must be between 1"},
		{"no days", func(c *Config) { c.Days = 0 }, "--days: must be between 1"},
		{"too many days", func(c *Config) { c.Days = 5000 }, "--days:"},
		{"no campaigns", func(c *Config) { c.Campaigns = 0 }, "--campaigns:"},
		{"negative invalid rate", func(c *Config) { c.InvalidRate = -0.1 }, "--invalid-rate:"},
		{"invalid rate NaN", func(c *Config) { c.InvalidRate = nan() }, "--invalid-rate:"},
		{"duplicate rate above 0.5", func(c *Config) { c.DuplicateRate = 0.9 }, "--duplicate-rate:"},
		{"no end", func(c *Config) { c.End = time.Time{} }, "--end: required"},
		{"end today", func(c *Config) { c.Now = c.End.Add(10 * time.Hour) }, "--end: must be before today"},
		{"end yesterday", func(c *Config) { c.Now = c.End.AddDate(0, 0, 1) }, ""},
		{"start before 1971", func(c *Config) { c.End = time.Date(1971, 1, 5, 0, 0, 0, 0, time.UTC) }, "--end: with --days 45"},
		{"bad reporting currency", func(c *Config) { c.ReportingCurrency = "eur" }, "events.reporting_currency:"},
		{"bad rate", func(c *Config) { c.Rates = map[string]float64{"USD": 0} }, "events.currency_rates.USD:"},
		{"unknown mix currency", func(c *Config) { c.CurrencyMix = []CurrencyShare{{"JPY", 1}} }, "--currency: JPY is neither"},
		{"zero mix weight", func(c *Config) { c.CurrencyMix = []CurrencyShare{{"EUR", 0}} }, "--currency: weight of EUR"},
		{"same topics", func(c *Config) { c.CampaignTopic = c.CRMTopic }, "--campaign-topic: must differ"},
		{"no topic", func(c *Config) { c.CRMTopic = "" }, "--crm-topic: required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := smallConfig()
			tt.change(&cfg)
			err := cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func nan() float64 { var z float64; return z / z }

func TestParseCurrencyMix(t *testing.T) {
	tests := []struct {
		in      string
		want    []CurrencyShare
		wantErr string
	}{
		{"", nil, ""},
		{"EUR=70,USD=20, gbp=10", []CurrencyShare{{"EUR", 70}, {"USD", 20}, {"GBP", 10}}, ""},
		{"EUR", nil, `"EUR" must be CODE=WEIGHT`},
		{"EURO=1", nil, "not a 3-letter currency code"},
		{"EUR=-1", nil, "weight of EUR must be a number > 0"},
		{"EUR=x", nil, "weight of EUR"},
		{"EUR=1,EUR=2", nil, "EUR appears twice"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseCurrencyMix(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "--currency: ") {
					t.Fatalf("ParseCurrencyMix(%q) = %v, want an error containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || len(got) != len(tt.want) {
				t.Fatalf("ParseCurrencyMix(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("ParseCurrencyMix(%q) = %v, want %v", tt.in, got, tt.want)
				}
			}
		})
	}
}
