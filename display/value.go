// Package display owns how KPI values read for people: one rule per unit
// for values and targets, and the status word a value earns against its
// target. The landing page, `kpibridge kpis list`, `kpibridge kpis query`
// and `kpibridge customer` all use it, so a number reads the same everywhere.
//
// The rules, by unit:
//
//	percent   already ×100; 2 decimals below 10, 1 below 100, none from 100:
//	          "1.81 %", "45.3 %", "1,250 %"
//	ratio     2 decimals: "0.79", "4.00"
//	currency  the currency code, then the amount; 2 decimals below 1,000,
//	          none from 1,000: "EUR 583.20", "EUR 72,260", "EUR -12.50"
//	count     rounded to a whole number: "1,304"
//	seconds   a duration in its two largest units: "45 s", "3m 20s",
//	          "20h 5m", "3d 4h"
//	days      1 decimal: "3.5 days"
//
// Common to all of them: thousands are separated by commas and decimals by a
// point, whatever the locale; never scientific notation. A percent or ratio
// below 0.1 (but not 0) keeps 3 significant digits, so a small share does not
// read as zero: "0.045", "0.0123 %". A negative value carries its minus sign
// on the number (after the currency code). A value that is not a number (NaN,
// ±Inf) reads "—".
package display

import (
	"math"
	"strconv"
	"strings"

	"github.com/kpibridge/kpibridge/catalog"
)

// Missing is what a value that is not a number, or a target that is not
// set, reads as.
const Missing = "—"

// Value formats v, in the unit of k, for people. currency is the reporting
// currency's code, shown before amounts of currency KPIs ("" shows the
// amount alone).
func Value(v float64, k catalog.KPI, currency string) string {
	switch k.Unit {
	case catalog.UnitPercent:
		return Percent(v)
	case catalog.UnitRatio:
		return Ratio(v)
	case catalog.UnitCurrency:
		return Currency(v, currency)
	case catalog.UnitCount:
		return Count(v)
	case catalog.UnitSeconds:
		return Seconds(v)
	case catalog.UnitDays:
		return Days(v)
	}
	return Number(v)
}

// Target formats the KPI's target with the rule of its unit, or Missing
// when it has none.
func Target(k catalog.KPI, currency string) string {
	if k.Target == nil {
		return Missing
	}
	return Value(*k.Target, k, currency)
}

// Percent formats a value already multiplied by 100: "1.81 %".
func Percent(v float64) string {
	if !finite(v) {
		return Missing
	}
	a := math.Abs(v)
	switch {
	case a < 0.1:
		return small(v) + " %"
	case rounded(a, 2) < 10:
		return fixed(v, 2) + " %"
	case rounded(a, 1) < 100:
		return fixed(v, 1) + " %"
	}
	return fixed(v, 0) + " %"
}

// Ratio formats a share or a multiple as a plain ratio: "0.79", "4.00".
func Ratio(v float64) string {
	if !finite(v) {
		return Missing
	}
	if math.Abs(v) < 0.1 {
		return small(v)
	}
	return fixed(v, 2)
}

// Currency formats an amount with its currency code: "EUR 72,260",
// "EUR 583.20". An empty code shows the amount alone.
func Currency(v float64, code string) string {
	if !finite(v) {
		return Missing
	}
	n := fixed(v, 0)
	if rounded(math.Abs(v), 2) < 1000 {
		n = fixed(v, 2)
	}
	if code == "" {
		return n
	}
	return code + " " + n
}

// Count formats a whole number of things: "1,304".
func Count(v float64) string {
	if !finite(v) {
		return Missing
	}
	return fixed(math.Round(v), 0)
}

// Days formats a number of days: "3.5 days".
func Days(v float64) string {
	if !finite(v) {
		return Missing
	}
	return fixed(v, 1) + " days"
}

// Number formats a quantity without a unit, such as the numerator or
// denominator of a ratio: whole numbers without decimals ("1,304"), others
// with 2 ("583.20"), or 3 significant digits below 0.1 ("0.045").
func Number(v float64) string {
	switch {
	case !finite(v):
		return Missing
	case v == math.Trunc(v):
		return fixed(v, 0)
	case math.Abs(v) < 0.1:
		return small(v)
	}
	return fixed(v, 2)
}

// Part formats the numerator or denominator of a ratio KPI, computed by m:
// a count when m counts, otherwise a Number.
func Part(v float64, m *catalog.Measure) string {
	if m != nil && strings.HasPrefix(m.Aggregate, "count") {
		return Count(v)
	}
	return Number(v)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// fixed formats v with dec decimals and thousands separators, without a
// minus sign on a value that rounds to zero.
func fixed(v float64, dec int) string {
	s := strconv.FormatFloat(v, 'f', dec, 64)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	if neg && strings.Trim(whole+frac, "0") != "" {
		b.WriteByte('-')
	}
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if frac != "" {
		b.WriteString("." + frac)
	}
	return b.String()
}

// rounded is a (≥ 0) as it reads with dec decimals, to pick the rule a
// value falls under after rounding: 9.999 % reads "10.0 %", not "10.00 %".
func rounded(a float64, dec int) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(a, 'f', dec, 64), 64)
	return r
}

// maxDecimals bounds small: values below 1e-8 read as 0.
const maxDecimals = 10

// small formats a value below 0.1 with 3 significant digits, trailing zeros
// trimmed but at least 2 decimals: 0.045 → "0.045", 0.03 → "0.03", 0 →
// "0.00".
func small(v float64) string {
	dec := 2
	if v != 0 {
		dec = min(maxDecimals, max(2, 2-int(math.Floor(math.Log10(math.Abs(v))))))
	}
	s := fixed(v, dec)
	point := strings.IndexByte(s, '.')
	s = strings.TrimRight(s, "0")
	if len(s) < point+3 {
		s += strings.Repeat("0", point+3-len(s))
	}
	return s
}
