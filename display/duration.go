package display

import (
	"math"
	"time"
)

// Seconds formats a number of seconds as a duration in its two largest
// units, rounded to the smaller one: "45 s", "2.5 s", "3m 20s", "20h 5m",
// "3d 4h". A zero smaller unit is left out: "5m", "1h", "2d".
func Seconds(v float64) string {
	if !finite(v) {
		return Missing
	}
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	if s := rounded(v, 1); s < 60 {
		if s == 0 {
			return "0 s"
		}
		if s == math.Trunc(s) {
			return sign + fixed(s, 0) + " s"
		}
		return sign + fixed(s, 1) + " s"
	}
	if s := math.Round(v); s < 3600 {
		return sign + pair(s, 60, "m", "s")
	}
	if m := math.Round(v / 60); m < 24*60 {
		return sign + pair(m, 60, "h", "m")
	}
	return sign + pair(math.Round(v/3600), 24, "d", "h")
}

// Duration formats d like Seconds.
func Duration(d time.Duration) string { return Seconds(d.Seconds()) }

// pair writes n small units as big units (of per small ones) and the rest.
func pair(n, per float64, big, smallUnit string) string {
	b, s := math.Floor(n/per), math.Mod(n, per)
	out := fixed(b, 0) + big
	if s != 0 {
		out += " " + fixed(s, 0) + smallUnit
	}
	return out
}
