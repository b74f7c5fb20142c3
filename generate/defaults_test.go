package generate_test

import (
	"maps"
	"testing"

	"github.com/kpibridge/kpibridge/config"
	"github.com/kpibridge/kpibridge/generate"
)

// The generator's default currencies must be the deployment's defaults, or
// a default run would send currencies a default ingest dead-letters. (An
// external test package: generate itself does not import config.)
func TestDefaultCurrenciesMatchConfig(t *testing.T) {
	g, c := generate.DefaultConfig(), config.Default().Events
	if g.ReportingCurrency != c.ReportingCurrency || !maps.Equal(g.Rates, c.CurrencyRates) {
		t.Fatalf("generate defaults %s %v, config defaults %s %v", g.ReportingCurrency, g.Rates, c.ReportingCurrency, c.CurrencyRates)
	}
	if g.CRMTopic != config.Default().Kafka.Topics[0] || g.CampaignTopic != config.Default().Kafka.Topics[1] {
		t.Fatalf("generate topics %s, %s; config topics %v", g.CRMTopic, g.CampaignTopic, config.Default().Kafka.Topics)
	}
}
