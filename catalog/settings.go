package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kpibridge/kpibridge/events"
)

// Settings are the choices the whole catalog shares: how conversions are
// credited to campaign touches, which channels are paid, owned or earned,
// and the margin CLV applies to revenue.
type Settings struct {
	// Margin is the share of net revenue that is profit, 0 < margin <= 1.
	// 1 (the default) makes CLV a revenue figure; set it to your gross
	// margin for a margin-based CLV.
	Margin      *float64    `yaml:"margin"`
	Attribution Attribution `yaml:"attribution"`
	// Channels classes every campaign channel as paid, owned or earned.
	Channels map[string][]string `yaml:"channels"`
}

// Attribution is the model that credits a conversion to one campaign touch.
type Attribution struct {
	// Model is first_touch (the earliest touch in the lookback) or
	// last_touch (the latest touch at or before the conversion).
	Model string `yaml:"model"`
	// Lookback is how far before the conversion a touch may be to earn credit.
	Lookback Window `yaml:"lookback"`
}

// Attribution models.
const (
	FirstTouch = "first_touch"
	LastTouch  = "last_touch"
)

// Channel classes.
const (
	ClassPaid   = "paid"
	ClassOwned  = "owned"
	ClassEarned = "earned"
)

// Unattributed is the dimension value of rows whose dimension is empty: a
// conversion with no campaign touch in its lookback, an event without a
// campaign. The event contract refuses it as a campaign id, so no real
// value can share its series.
const Unattributed = events.ReservedValue

// ChannelClasses are the classes a channel may have, best first.
func ChannelClasses() []string { return []string{ClassPaid, ClassOwned, ClassEarned} }

// DefaultSettings are the settings of a catalog that leaves them out.
func DefaultSettings() Settings {
	one := 1.0
	lookback, _ := ParseWindow("30d")
	return Settings{
		Margin:      &one,
		Attribution: Attribution{Model: FirstTouch, Lookback: lookback},
		Channels: map[string][]string{
			ClassPaid:   {"paid_search", "paid_social", "display", "affiliate", "events"},
			ClassOwned:  {"email", "social"},
			ClassEarned: {"organic_search", "referral", "direct"},
		},
	}
}

// applyDefaults fills what the catalog left out.
func (s *Settings) applyDefaults() {
	d := DefaultSettings()
	if s.Margin == nil {
		s.Margin = d.Margin
	}
	if s.Attribution.Model == "" {
		s.Attribution.Model = d.Attribution.Model
	}
	if s.Attribution.Lookback.Kind == "" {
		s.Attribution.Lookback = d.Attribution.Lookback
	}
	if s.Channels == nil {
		s.Channels = d.Channels
	}
}

// ClassOf returns the class of a campaign channel, "" for none.
func (s Settings) ClassOf(channel string) string {
	for _, class := range ChannelClasses() {
		if slices.Contains(s.Channels[class], channel) {
			return class
		}
	}
	return ""
}

// ClassMap returns the channels and their classes as two parallel lists,
// in the order of events.Channels, for a SQL transform().
func (s Settings) ClassMap() (channels, classes []string) {
	for _, ch := range events.Channels {
		if class := s.ClassOf(ch); class != "" {
			channels = append(channels, ch)
			classes = append(classes, class)
		}
	}
	return channels, classes
}

// LookbackSeconds is the attribution lookback in seconds.
func (s Settings) LookbackSeconds() uint32 {
	return uint32(s.Attribution.Lookback.Duration / time.Second)
}

// Fingerprint identifies what the customer 360 computes from the settings
// (model, lookback, classes): the identity resolver rebuilds every
// customer when it changes.
func (s Settings) Fingerprint() string {
	chans, classes := s.ClassMap()
	h := sha256.Sum256([]byte(fmt.Sprintf("%s|%d|%s|%s", s.Attribution.Model, s.LookbackSeconds(), strings.Join(chans, ","), strings.Join(classes, ","))))
	return hex.EncodeToString(h[:8])
}

// validate checks the settings; line gives the line of a settings key path.
func (s Settings) validate(fail func(path, format string, args ...any)) {
	if m := *s.Margin; !(m > 0 && m <= 1) {
		fail("settings.margin", "want a share of revenue greater than 0 and at most 1 (1 = revenue-based CLV), got %v", m)
	}
	switch s.Attribution.Model {
	case FirstTouch, LastTouch:
	default:
		fail("settings.attribution.model", "want first_touch or last_touch, got %q", s.Attribution.Model)
	}
	if lb := s.Attribution.Lookback; lb.Kind != Rolling || lb.Duration < time.Hour || lb.Duration > 400*24*time.Hour {
		fail("settings.attribution.lookback", "want a rolling window from 1h to 400d such as 30d, got %q", lb.String())
	}
	seen := map[string]string{}
	classes := ChannelClasses()
	for _, class := range SortedKeys(s.Channels) {
		if !slices.Contains(classes, class) {
			classes = append(classes, class)
		}
	}
	for _, class := range classes {
		if _, ok := s.Channels[class]; !ok {
			continue
		}
		if !slices.Contains(ChannelClasses(), class) {
			fail("settings.channels."+class, "unknown channel class %q (want %s)", class, strings.Join(ChannelClasses(), ", "))
			continue
		}
		for _, ch := range s.Channels[class] {
			switch {
			case !slices.Contains(events.Channels, ch):
				fail("settings.channels."+class, "%q is not a campaign channel of the event contract (%s)", ch, strings.Join(events.Channels, ", "))
			case seen[ch] != "":
				fail("settings.channels."+class, "channel %s is classed twice, as %s and as %s", ch, seen[ch], class)
			default:
				seen[ch] = class
			}
		}
	}
	var missing []string
	for _, ch := range events.Channels {
		if seen[ch] == "" {
			missing = append(missing, ch)
		}
	}
	if len(missing) > 0 && len(s.Channels) > 0 {
		fail("settings.channels", "every campaign channel needs a class (paid, owned or earned); unclassed: %s", strings.Join(missing, ", "))
	}
}
