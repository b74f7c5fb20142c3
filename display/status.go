package display

import (
	"math"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
)

// The status words a value earns against its KPI's target.
const (
	// OnTrack: on the good side of the target, or exactly on it.
	OnTrack = "on track"
	// AtRisk: off target, but not past the warning threshold.
	AtRisk = "at risk"
	// OffTrack: past the warning threshold, or off target when the KPI has
	// no warning threshold.
	OffTrack = "off track"
	// NoTarget: the KPI has no target to stand against.
	NoTarget = "no target"
	// NoValue: the value is not a number.
	NoValue = "no value"
	// Stale: the latest value is older than the KPI's freshness bound, so
	// it no longer says where the KPI stands (the pipeline stopped
	// refreshing it).
	Stale = "stale"
)

// Status says where v stands against the KPI's target and warning
// threshold, whichever way is good: a word (OnTrack, AtRisk, OffTrack,
// NoTarget, NoValue) and the CSS class the landing page colours it with
// ("ok", "warn", "bad", "muted"). Equal to the target is on track; equal to
// the warning threshold is at risk, not yet past it (as KPIPastWarning
// alerts only beyond it).
func Status(k catalog.KPI, v float64) (word, class string) {
	switch {
	case k.Target == nil:
		return NoTarget, "muted"
	case math.IsNaN(v):
		return NoValue, "muted"
	}
	atLeastAsGood := func(a, b float64) bool {
		if k.Direction == catalog.LowerIsBetter {
			return a <= b
		}
		return a >= b
	}
	switch {
	case atLeastAsGood(v, *k.Target):
		return OnTrack, "ok"
	case k.Warning != nil && atLeastAsGood(v, *k.Warning):
		return AtRisk, "warn"
	}
	return OffTrack, "bad"
}

// StatusAt is Status for a value that is age old when read, which must be
// no older than maxAge: an older value is Stale ("muted"), whatever it
// was, since where it stood then is not where the KPI stands now.
func StatusAt(k catalog.KPI, v float64, age, maxAge time.Duration) (word, class string) {
	if age > maxAge && !math.IsNaN(v) {
		return Stale, "muted"
	}
	return Status(k, v)
}
