package events

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// DefaultMaxFutureSkew is how far after the decoder's clock occurred_at may
// lie when Config.MaxFutureSkew is zero.
const DefaultMaxFutureSkew = time.Hour

// Config configures a Decoder. The zero value is not valid: EmailHashKey
// and ReportingCurrency are required.
type Config struct {
	// EmailHashKey is the HMAC key for email hashes. It is a secret: load
	// it from the environment or a file, never from flags or YAML. Changing
	// it changes every hash, which splits each customer in two.
	EmailHashKey []byte `yaml:"-"`
	// ReportingCurrency is the ISO 4217 code every amount is converted to,
	// such as "EUR".
	ReportingCurrency string `yaml:"reporting_currency"`
	// Rates maps a currency code to the factor that converts an amount in
	// it into the reporting currency. The reporting currency's factor is
	// implicitly 1; every factor must be finite and > 0.
	Rates map[string]float64 `yaml:"rates"`
	// MaxFutureSkew is how far after Now an occurred_at may be; zero means
	// DefaultMaxFutureSkew.
	MaxFutureSkew time.Duration `yaml:"max_future_skew"`
	// Now is the clock for the future check; nil means time.Now.
	Now func() time.Time `yaml:"-"`
}

// Validate checks the config; errors name the field as
// "events.<field>: <problem>".
func (c Config) Validate() error {
	if len(c.EmailHashKey) == 0 {
		return fmt.Errorf("events.email_hash_key: required, got an empty key")
	}
	if !isCurrencyCode(c.ReportingCurrency) {
		return fmt.Errorf("events.reporting_currency: must be 3 upper-case letters, got %q", c.ReportingCurrency)
	}
	codes := make([]string, 0, len(c.Rates))
	for code := range c.Rates {
		codes = append(codes, code)
	}
	sort.Strings(codes)
	for _, code := range codes {
		f := c.Rates[code]
		switch {
		case !isCurrencyCode(code):
			return fmt.Errorf("events.rates: currency must be 3 upper-case letters, got %q", code)
		case math.IsNaN(f) || math.IsInf(f, 0) || f <= 0:
			return fmt.Errorf("events.rates.%s: must be a finite number > 0, got %v", code, f)
		case code == c.ReportingCurrency && f != 1:
			return fmt.Errorf("events.rates.%s: the reporting currency's rate is 1, got %v", code, f)
		}
	}
	if c.MaxFutureSkew < 0 {
		return fmt.Errorf("events.max_future_skew: must be >= 0, got %v", c.MaxFutureSkew)
	}
	return nil
}

func isCurrencyCode(s string) bool {
	return len(s) == 3 && isUpper(s[0]) && isUpper(s[1]) && isUpper(s[2])
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

// rate is a known currency: its code, kept to reuse the string, and its
// factor into the reporting currency.
type rate struct {
	code   string
	factor float64
}
