package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/events"
)

// trickle produces a steady stream of live events (occurred_at = now) for a
// pool of demo customers, so that freshness and live KPIs move.
type trickle struct {
	w    *kafka.Writer
	rng  *rand.Rand
	seq  int
	pool int
}

func newTrickle(brokers []string, seed int64) *trickle {
	return &trickle{
		w: &kafka.Writer{Addr: kafka.TCP(brokers...), Balancer: &kafka.Hash{}, BatchTimeout: 5 * time.Millisecond,
			RequiredAcks: kafka.RequireAll, AllowAutoTopicCreation: true},
		rng:  rand.New(rand.NewPCG(uint64(seed), 0x6c697665)),
		pool: 200,
	}
}

var liveChannels = [][2]string{{"live_search", "paid_search"}, {"live_social", "paid_social"}, {"live_mail", "email"}}

// tick sends n events.
func (t *trickle) tick(ctx context.Context, n int) error {
	now := time.Now().UTC().Format(time.RFC3339)
	msgs := make([]kafka.Message, 0, n)
	for range n {
		t.seq++
		c := t.rng.IntN(t.pool)
		anon, email, crm := fmt.Sprintf("live-anon-%d", c), fmt.Sprintf("live%d@example.com", c), fmt.Sprintf("LIVE-%d", c)
		camp := liveChannels[c%len(liveChannels)]
		m := events.Message{EventID: fmt.Sprintf("live-%d-%d", time.Now().UnixNano(), t.seq), OccurredAt: now}
		switch r := t.rng.Float64(); {
		case r < 0.5:
			m.Type, m.Source, m.Identity = events.TypeWebVisit, "google_analytics", events.Identity{AnonymousID: anon}
			m.Campaign = &events.Campaign{CampaignID: camp[0], Channel: camp[1]}
			m.Properties = map[string]any{"url": "https://shop.example/live"}
		case r < 0.7:
			m.Type, m.Source, m.Identity = events.TypeAppSession, "firebase", events.Identity{AnonymousID: anon}
			m.Properties = map[string]any{"platform": []string{"ios", "android"}[c%2]}
		case r < 0.8:
			m.Type, m.Source, m.Identity = events.TypeFormSubmitted, "typeform", events.Identity{AnonymousID: anon, Email: email}
			m.Properties = map[string]any{"form_id": "live-signup"}
		default:
			m.Type, m.Source, m.Identity = events.TypeOrderPlaced, "shopify", events.Identity{CRMContactID: crm, Email: email}
			m.Properties = map[string]any{"order_id": fmt.Sprintf("LIVE-O-%d", t.seq), "amount": 20 + float64(t.rng.IntN(180)),
				"currency": "EUR", "channel": []string{"web", "mobile_app", "store"}[t.rng.IntN(3)]}
		}
		v, err := json.Marshal(m)
		if err != nil {
			return err
		}
		msgs = append(msgs, kafka.Message{Topic: m.Type.Topic(), Key: []byte(m.Identity.Key()), Value: v})
	}
	return t.w.WriteMessages(ctx, msgs...)
}

func (t *trickle) close() error { return t.w.Close() }
