package exporter

import "time"

// SetClock fixes the collector's clock for tests.
func SetClock(c *KPICollector, now func() time.Time) { c.now = now }
