package events_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/kpibridge/kpibridge/events"
)

func ExampleDecoder_Decode() {
	dec, err := events.NewDecoder(events.Config{
		EmailHashKey:      []byte("example-key"), // a secret from a file in real use
		ReportingCurrency: "EUR",
		Rates:             map[string]float64{"USD": 0.5},
		Now:               func() time.Time { return time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC) },
	})
	if err != nil {
		panic(err)
	}

	ev, err := dec.Decode([]byte(`{"event_id":"shop-1","type":"order.placed",` +
		`"occurred_at":"2025-05-27T19:03:22+01:00","source":"shopify",` +
		`"identity":{"email":"Jane@Example.com"},` +
		`"properties":{"order_id":"1001","amount":40,"currency":"USD","channel":"web","coupon":"X1"}}`))
	if err != nil {
		panic(err)
	}
	fmt.Println(ev.Type, ev.OccurredAt, ev.EntityID, ev.Amount, ev.AmountOriginal, ev.Currency)
	fmt.Println(len(ev.EmailHash), string(ev.Properties))

	_, err = dec.Decode([]byte(`{"event_id":"shop-2","type":"order.placed",` +
		`"occurred_at":"2025-05-27T19:03:22Z","source":"shopify","identity":{"crm_contact_id":"c-1"},` +
		`"properties":{"order_id":"1002","amount":40,"currency":"USD","channel":"fax"}}`))
	var e *events.Error
	if errors.As(err, &e) {
		fmt.Println(e.Reason, e.Field, errors.Is(err, events.ErrInvalid))
		fmt.Println(err)
	}
	// Output:
	// order.placed 2025-05-27 18:03:22 +0000 UTC 1001 20 40 USD
	// 64 {"order_id":"1001","amount":40,"currency":"USD","channel":"web","coupon":"X1"}
	// invalid_field properties.channel true
	// invalid_field: properties.channel: "fax" is not one of web, mobile_app, store, phone, partner
}
