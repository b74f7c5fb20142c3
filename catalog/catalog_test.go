package catalog_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
)

func TestDefaultCatalogIsValidAndCoversTheAgreedKPIs(t *testing.T) {
	c, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	// The KPIs the issue names, and the IT data-health KPIs.
	for _, name := range []string{"marketing_spend", "leads", "cpl", "cac", "roas", "marketing_sourced_revenue", "ctr",
		"email_open_rate", "email_click_rate", "lead_to_mql", "mql_to_sql", "sql_to_opportunity", "opportunity_to_won",
		"win_rate", "average_deal_size", "revenue", "order_revenue", "orders", "repeat_purchase_rate", "churn_rate", "clv",
		"active_customers", "martech_spend_share", "data_freshness", "ingest_lag", "invalid_event_rate",
		"duplicate_event_rate", "identity_match_rate"} {
		if _, ok := c.Get(name); !ok {
			t.Errorf("default catalog lacks %s", name)
		}
	}
	k, _ := c.Get("martech_spend_share")
	if k.Target == nil || *k.Target != 3.24 || k.Unit != catalog.UnitPercent {
		t.Errorf("martech_spend_share target %v %s, want the 3.24 %% benchmark", k.Target, k.Unit)
	}
	k, _ = c.Get("cac")
	if len(k.Dimensions) != 1 || k.Dimensions[0] != "channel" {
		t.Errorf("cac dimensions %v, want by channel", k.Dimensions)
	}
}

func TestGoodCatalogs(t *testing.T) {
	c, err := catalog.Load("testdata/good_full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	k, _ := c.Get("spend")
	if k.Window.Kind != catalog.CalendarMonth || k.MaxSeries != 20 || time.Duration(k.Refresh) != time.Minute || time.Duration(k.Timeout) != 10*time.Second {
		t.Errorf("spend decoded as %+v", k)
	}
	k, _ = c.Get("buyers")
	if k.Window.Duration != 7*24*time.Hour || k.MaxSeries != catalog.DefaultMaxSeries || k.Refresh != catalog.DefaultRefresh {
		t.Errorf("buyers defaults not applied: %+v", k)
	}
	if k.Measure.TimeField != "occurred_at" || k.Measure.Dimension("channel") != "customer.acquisition_channel" {
		t.Errorf("buyers measure %+v", k.Measure)
	}
	order := c.Order()
	if order[len(order)-1].Name != "cost_per_buyer" {
		t.Errorf("derived KPI not ordered after its inputs: %v", order)
	}
	if _, err := catalog.Load("testdata/good_minimal.yaml"); err != nil {
		t.Fatal(err)
	}
}

// Each testdata/bad_*.yaml has the expected error lines in bad_*.err beside it.
func TestBadCatalogs(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad_*.yaml")
	if len(files) < 10 {
		t.Fatalf("only %d bad cases", len(files))
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(f, ".yaml") + ".err")
			if err != nil {
				t.Fatal(err)
			}
			_, err = catalog.Load(f)
			if err == nil {
				t.Fatal("no error")
			}
			for _, line := range strings.Split(strings.TrimSpace(string(want)), "\n") {
				if !strings.Contains(err.Error(), line) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, line)
				}
			}
			if !strings.Contains(err.Error(), filepath.Base(f)) {
				t.Errorf("error does not name the file: %v", err)
			}
			// Said for people: no Go types, no YAML decoder wording.
			for _, jargon := range []string{"!!str", "float64", "[]string", "in type", "unmarshal", "not found in"} {
				if strings.Contains(err.Error(), jargon) {
					t.Errorf("error says %q:\n%v", jargon, err)
				}
			}
		})
	}
}

func TestParseWindow(t *testing.T) {
	tests := []struct {
		in      string
		want    catalog.Window
		wantErr bool
	}{
		{"7d", catalog.Window{Kind: catalog.Rolling, Duration: 7 * 24 * time.Hour}, false},
		{"12h", catalog.Window{Kind: catalog.Rolling, Duration: 12 * time.Hour}, false},
		{"calendar_month", catalog.Window{Kind: catalog.CalendarMonth}, false},
		{"lifetime", catalog.Window{Kind: catalog.Lifetime}, false},
		{"0d", catalog.Window{}, true},
		{"30", catalog.Window{}, true},
		{"1w", catalog.Window{}, true},
	}
	for _, tt := range tests {
		got, err := catalog.ParseWindow(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseWindow(%q) = %+v, %v", tt.in, got, err)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("%q round-trips to %q", tt.in, got.String())
		}
	}
	now := time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	start, end := catalog.Window{Kind: catalog.CalendarMonth}.Bounds(now)
	if !start.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) || !end.Equal(now.Add(time.Second)) {
		t.Errorf("calendar month bounds %s – %s", start, end)
	}
}

func TestReferencesRejectsMoreThanArithmetic(t *testing.T) {
	refs, err := catalog.References("(revenue - spend) / spend * 100")
	if err != nil || strings.Join(refs, ",") != "revenue,spend" {
		t.Errorf("refs %v, %v", refs, err)
	}
	for _, bad := range []string{"len(spend)", "spend > 2", "spend ? 1 : 2", "spend +"} {
		if _, err := catalog.References(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// docs/KPIS.md is generated from the default catalog: it must be current.
func TestKPIDocsAreGenerated(t *testing.T) {
	c, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	want := catalog.Markdown(c)
	path := filepath.Join("..", "docs", "KPIS.md")
	if os.Getenv("UPDATE_DOCS") != "" {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatal("docs/KPIS.md is out of date: run `UPDATE_DOCS=1 go test ./catalog/ -run KPIDocs` (or `kpibridge kpis docs > docs/KPIS.md`)")
	}
}

func TestSettingsDefaultsAndOverrides(t *testing.T) {
	c, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	s := c.Settings
	if s.Attribution.Model != catalog.FirstTouch || s.Attribution.Lookback.String() != "30d" || *s.Margin != 1 {
		t.Errorf("default settings %+v", s)
	}
	for ch, class := range map[string]string{"paid_search": "paid", "email": "owned", "organic_search": "earned", "direct": "earned", "events": "paid"} {
		if got := s.ClassOf(ch); got != class {
			t.Errorf("%s is %q, want %s", ch, got, class)
		}
	}
	k, _ := c.Get("clv")
	if k.Settings().Attribution.Model != catalog.FirstTouch {
		t.Errorf("a KPI does not see its catalog's settings")
	}
	// A catalog that sets only the model keeps the other defaults.
	y := strings.Replace(string(catalog.DefaultYAML()), "settings:\n", "settings:\n  margin: 0.4\n", 1)
	y = strings.Replace(y, "  margin: 1 ", "  # margin: 1 ", 1)
	y = strings.Replace(y, "model: first_touch", "model: last_touch", 1)
	c2, err := catalog.Parse("override.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if c2.Settings.Attribution.Model != catalog.LastTouch || *c2.Settings.Margin != 0.4 || c2.Settings.Fingerprint() == s.Fingerprint() {
		t.Errorf("overridden settings %+v (fingerprint %s vs %s)", c2.Settings, c2.Settings.Fingerprint(), s.Fingerprint())
	}
	k, _ = c2.Get("clv")
	if k.Settings().Constants()["margin"] != 0.4 {
		t.Errorf("clv sees margin %v, want 0.4", k.Settings().Constants()["margin"])
	}
}
