package display_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/display"
)

func kpi(u catalog.Unit) catalog.KPI { return catalog.KPI{Name: "k", Unit: u} }

func TestValue(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	for _, tc := range []struct {
		name string
		unit catalog.Unit
		v    float64
		want string
	}{
		{"percent below 10", catalog.UnitPercent, 1.8134, "1.81 %"},
		{"percent target", catalog.UnitPercent, 3.24, "3.24 %"},
		{"percent below 100", catalog.UnitPercent, 45.27, "45.3 %"},
		{"percent rounding up to 10", catalog.UnitPercent, 9.999, "10.0 %"},
		{"percent 100", catalog.UnitPercent, 100, "100 %"},
		{"percent large", catalog.UnitPercent, 1250.4, "1,250 %"},
		{"percent million", catalog.UnitPercent, 1e6, "1,000,000 %"},
		{"percent small", catalog.UnitPercent, 0.0123456, "0.0123 %"},
		{"percent zero", catalog.UnitPercent, 0, "0.00 %"},
		{"percent negative", catalog.UnitPercent, -2.5, "-2.50 %"},
		{"percent NaN", catalog.UnitPercent, nan, "—"},

		{"ratio share", catalog.UnitRatio, 0.788, "0.79"},
		{"ratio multiple", catalog.UnitRatio, 4, "4.00"},
		{"ratio small", catalog.UnitRatio, 0.045, "0.045"},
		{"ratio small round", catalog.UnitRatio, 0.03, "0.03"},
		{"ratio small 3 digits", catalog.UnitRatio, 0.0123456, "0.0123"},
		{"ratio small rounding up to 0.1", catalog.UnitRatio, 0.09996, "0.10"},
		{"ratio tiny", catalog.UnitRatio, 0.0000123, "0.0000123"},
		{"ratio below what is shown", catalog.UnitRatio, 1e-12, "0.00"},
		{"ratio zero", catalog.UnitRatio, 0, "0.00"},
		{"ratio negative", catalog.UnitRatio, -1.234, "-1.23"},
		{"ratio negative small", catalog.UnitRatio, -0.05, "-0.05"},
		{"ratio large", catalog.UnitRatio, 72260, "72,260.00"},
		{"ratio billion", catalog.UnitRatio, 1e9, "1,000,000,000.00"},
		{"ratio Inf", catalog.UnitRatio, inf, "—"},

		{"currency thousands", catalog.UnitCurrency, 72260.4, "EUR 72,260"},
		{"currency million", catalog.UnitCurrency, 1e6, "EUR 1,000,000"},
		{"currency billion", catalog.UnitCurrency, 1e9, "EUR 1,000,000,000"},
		{"currency below 1000", catalog.UnitCurrency, 583.2, "EUR 583.20"},
		{"currency rounding up to 1000", catalog.UnitCurrency, 999.999, "EUR 1,000"},
		{"currency cents", catalog.UnitCurrency, 1.5, "EUR 1.50"},
		{"currency below a cent", catalog.UnitCurrency, 0.004, "EUR 0.00"},
		{"currency zero", catalog.UnitCurrency, 0, "EUR 0.00"},
		{"currency negative", catalog.UnitCurrency, -12.5, "EUR -12.50"},
		{"currency negative thousands", catalog.UnitCurrency, -150000, "EUR -150,000"},
		{"currency negative rounding to zero", catalog.UnitCurrency, -0.004, "EUR 0.00"},
		{"currency NaN", catalog.UnitCurrency, nan, "—"},

		{"count", catalog.UnitCount, 1304, "1,304"},
		{"count with float noise", catalog.UnitCount, 65.0000, "65"},
		{"count rounded", catalog.UnitCount, 65.5, "66"},
		{"count million", catalog.UnitCount, 1e6, "1,000,000"},
		{"count billion", catalog.UnitCount, 1e9, "1,000,000,000"},
		{"count zero", catalog.UnitCount, 0, "0"},
		{"count negative", catalog.UnitCount, -1304, "-1,304"},
		{"count negative rounding to zero", catalog.UnitCount, -0.4, "0"},
		{"count -Inf", catalog.UnitCount, math.Inf(-1), "—"},

		{"seconds", catalog.UnitSeconds, 45, "45 s"},
		{"seconds fraction", catalog.UnitSeconds, 2.5, "2.5 s"},
		{"seconds zero", catalog.UnitSeconds, 0, "0 s"},
		{"seconds below what is shown", catalog.UnitSeconds, 0.04, "0 s"},
		{"seconds rounding up to a minute", catalog.UnitSeconds, 59.96, "1m"},
		{"minutes and seconds", catalog.UnitSeconds, 200, "3m 20s"},
		{"whole minutes", catalog.UnitSeconds, 300, "5m"},
		{"rounding up to an hour", catalog.UnitSeconds, 3599.6, "1h"},
		{"hours and minutes", catalog.UnitSeconds, 72300, "20h 5m"},
		{"target of an hour", catalog.UnitSeconds, 3600, "1h"},
		{"rounding up to a day", catalog.UnitSeconds, 86399, "1d"},
		{"days and hours", catalog.UnitSeconds, 273600, "3d 4h"},
		{"seconds million", catalog.UnitSeconds, 1e6, "11d 14h"},
		{"seconds billion", catalog.UnitSeconds, 1e9, "11,574d 2h"},
		{"seconds negative", catalog.UnitSeconds, -200, "-3m 20s"},
		{"seconds NaN", catalog.UnitSeconds, nan, "—"},

		{"days", catalog.UnitDays, 3.5, "3.5 days"},
		{"days whole", catalog.UnitDays, 30, "30.0 days"},
		{"days zero", catalog.UnitDays, 0, "0.0 days"},
		{"days million", catalog.UnitDays, 1e6, "1,000,000.0 days"},
		{"days negative", catalog.UnitDays, -2.26, "-2.3 days"},
		{"days Inf", catalog.UnitDays, inf, "—"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := display.Value(tc.v, kpi(tc.unit), "EUR"); got != tc.want {
				t.Errorf("Value(%v, %s) = %q, want %q", tc.v, tc.unit, got, tc.want)
			}
		})
	}
}

// No value of any magnitude reads in scientific notation.
func TestValueNeverScientific(t *testing.T) {
	for _, u := range catalog.Units {
		for p := -15; p <= 15; p++ {
			for _, v := range []float64{math.Pow10(p), -1.5 * math.Pow10(p)} {
				got := display.Value(v, kpi(u), "EUR")
				if strings.ContainsAny(strings.TrimPrefix(got, "EUR "), "eE+") {
					t.Errorf("Value(%g, %s) = %q", v, u, got)
				}
			}
		}
	}
}

func TestCurrencyWithoutCode(t *testing.T) {
	if got := display.Currency(72260, ""); got != "72,260" {
		t.Errorf("Currency(72260, \"\") = %q, want 72,260", got)
	}
	if got := display.Currency(150, "USD"); got != "USD 150.00" {
		t.Errorf("Currency(150, USD) = %q", got)
	}
}

func TestTarget(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	for _, tc := range []struct {
		name   string
		unit   catalog.Unit
		target *float64
		want   string
	}{
		{"percent", catalog.UnitPercent, f(3.24), "3.24 %"},
		{"currency", catalog.UnitCurrency, f(150000), "EUR 150,000"},
		{"currency below 1000", catalog.UnitCurrency, f(1.5), "EUR 1.50"},
		{"ratio", catalog.UnitRatio, f(0.25), "0.25"},
		{"small ratio", catalog.UnitRatio, f(0.01), "0.01"},
		{"count", catalog.UnitCount, f(3000), "3,000"},
		{"seconds", catalog.UnitSeconds, f(3600), "1h"},
		{"none", catalog.UnitCurrency, nil, "—"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := kpi(tc.unit)
			k.Target = tc.target
			if got := display.Target(k, "EUR"); got != tc.want {
				t.Errorf("Target = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNumberAndPart(t *testing.T) {
	count := &catalog.Measure{Aggregate: "count_distinct"}
	sum := &catalog.Measure{Aggregate: "sum", Field: "amount"}
	for _, tc := range []struct {
		name string
		got  string
		want string
	}{
		{"whole number", display.Number(240), "240"},
		{"whole thousands", display.Number(72260), "72,260"},
		{"fraction", display.Number(583.2), "583.20"},
		{"small", display.Number(0.045), "0.045"},
		{"billion", display.Number(1e9), "1,000,000,000"},
		{"NaN", display.Number(math.NaN()), "—"},
		{"counted part", display.Part(65.0000, count), "65"},
		{"counted part million", display.Part(1e6, count), "1,000,000"},
		{"summed part", display.Part(240.5, sum), "240.50"},
		{"part of an unknown measure", display.Part(1304, nil), "1,304"},
		{"duration", display.Duration(20 * time.Second), "20 s"},
		{"duration minutes", display.Duration(200 * time.Second), "3m 20s"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

func TestStatus(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	openRate := catalog.KPI{Unit: catalog.UnitRatio, Direction: catalog.HigherIsBetter, Target: f(0.25), Warning: f(0.18)}
	cac := catalog.KPI{Unit: catalog.UnitCurrency, Direction: catalog.LowerIsBetter, Target: f(600), Warning: f(800)}
	orders := catalog.KPI{Unit: catalog.UnitCount, Direction: catalog.HigherIsBetter, Target: f(3000)}
	lag := catalog.KPI{Unit: catalog.UnitSeconds, Direction: catalog.LowerIsBetter, Target: f(300)}
	noTarget := catalog.KPI{Unit: catalog.UnitCount, Direction: catalog.HigherIsBetter}
	for _, tc := range []struct {
		name      string
		k         catalog.KPI
		v         float64
		word, cls string
	}{
		{"higher is better, above target", openRate, 0.3, "on track", "ok"},
		{"higher is better, exactly on target", openRate, 0.25, "on track", "ok"},
		{"higher is better, between target and warning", openRate, 0.2, "at risk", "warn"},
		{"higher is better, exactly on warning", openRate, 0.18, "at risk", "warn"},
		{"higher is better, past warning", openRate, 0.1, "off track", "bad"},
		{"lower is better, below target", cac, 500, "on track", "ok"},
		{"lower is better, exactly on target", cac, 600, "on track", "ok"},
		{"lower is better, between target and warning", cac, 700, "at risk", "warn"},
		{"lower is better, exactly on warning", cac, 800, "at risk", "warn"},
		{"lower is better, past warning", cac, 900, "off track", "bad"},
		{"higher is better without warning, on target", orders, 3000, "on track", "ok"},
		{"higher is better without warning, off target", orders, 2999, "off track", "bad"},
		{"lower is better without warning, on target", lag, 120, "on track", "ok"},
		{"lower is better without warning, off target", lag, 301, "off track", "bad"},
		{"no target", noTarget, 42, "no target", "muted"},
		{"no value", cac, math.NaN(), "no value", "muted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			word, cls := display.Status(tc.k, tc.v)
			if word != tc.word || cls != tc.cls {
				t.Errorf("Status(%v) = %q, %q; want %q, %q", tc.v, word, cls, tc.word, tc.cls)
			}
			// A value read within its freshness bound keeps its status.
			if word, cls := display.StatusAt(tc.k, tc.v, time.Hour, time.Hour); word != tc.word || cls != tc.cls {
				t.Errorf("StatusAt(%v, fresh) = %q, %q; want %q, %q", tc.v, word, cls, tc.word, tc.cls)
			}
		})
	}
}

// A value older than its freshness bound is stale whatever it was: on
// track, off track or without a target. No value stays no value.
func TestStatusStale(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	cac := catalog.KPI{Unit: catalog.UnitCurrency, Direction: catalog.LowerIsBetter, Target: f(600), Warning: f(800)}
	noTarget := catalog.KPI{Unit: catalog.UnitCount, Direction: catalog.HigherIsBetter}
	for _, tc := range []struct {
		name      string
		k         catalog.KPI
		v         float64
		age       time.Duration
		word, cls string
	}{
		{"on track, just within the bound", cac, 500, 24 * time.Hour, "on track", "ok"},
		{"on track, past the bound", cac, 500, 24*time.Hour + time.Second, "stale", "muted"},
		{"off track, past the bound", cac, 900, 72 * time.Hour, "stale", "muted"},
		{"no target, past the bound", noTarget, 42, 72 * time.Hour, "stale", "muted"},
		{"no value, past the bound", cac, math.NaN(), 72 * time.Hour, "no value", "muted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if word, cls := display.StatusAt(tc.k, tc.v, tc.age, 24*time.Hour); word != tc.word || cls != tc.cls {
				t.Errorf("StatusAt(%v, %s) = %q, %q; want %q, %q", tc.v, tc.age, word, cls, tc.word, tc.cls)
			}
		})
	}
}
