package pipeline_test

import (
	"html"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/config"
	"github.com/kpibridge/kpibridge/display"
	"github.com/kpibridge/kpibridge/generate"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/transform"
)

var (
	rowRe   = regexp.MustCompile(`(?s)<tr data-kpi="([a-z_0-9]+)">(.*?)</tr>`)
	valueRe = regexp.MustCompile(`(?s)<td class="num value">(.*?)</td>`)
	statRe  = regexp.MustCompile(`(?s)<td class="status [a-z]+">.*?</span>\s*(.*?)</td>`)
	winsRe  = regexp.MustCompile(`(?s)<h2>Wins this week</h2>(.*?)</div>`)
)

// The executive scorecard as a person sees it: headless Chromium opens
// /scorecard of a running pipeline over generated data, and the rendered
// page shows every exec KPI with the value `kpibridge kpis query` gives
// (same formatting), the status word its value, target and direction
// call for, and a crafted target crossing under the week's wins.
func TestScorecardInChromium(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	testenv.Require(t, err == nil, "chromium (Debian package chromium)")
	target, conn := testenv.MigratedClickHouse(t)
	ctx := t.Context()
	brokerAddr := testenv.Broker(t, 3)

	gcfg := generate.DefaultConfig()
	gcfg.Customers, gcfg.Days = 500, 60
	gcfg.End = time.Now().UTC().AddDate(0, 0, -1)
	var held heldSink
	if _, err := generate.Run(ctx, gcfg, &held, nil); err != nil {
		t.Fatal(err)
	}
	sink, err := generate.NewKafkaSink(generate.KafkaConfig{Brokers: []string{brokerAddr}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Write(ctx, held.recs); err != nil {
		t.Fatal(err)
	}
	_ = sink.Close()

	cfg := config.Default()
	cfg.Kafka.Brokers = []string{brokerAddr}
	cfg.ClickHouse.DSN = target.DSN
	cfg.Ingest.Batch.MaxWait = 200 * time.Millisecond
	cfg.Export.ScorecardInterval = 2 * time.Second
	stopIngest := start(t, cfg, []string{"ingest"}, nil)
	waitForEvents(t, conn, valid(held.recs))
	stopIngest()
	addr := serveAll(t, cfg)

	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	var exec_ []catalog.KPI
	for _, k := range cat.KPIs {
		if slices.Contains(k.Audience, "exec") {
			exec_ = append(exec_, k)
		}
	}
	// What `kpibridge kpis query NAME` prints for each exec KPI, now.
	want := map[string]string{}
	status := map[string]string{}
	for _, k := range exec_ {
		res, err := transform.QueryKPI(ctx, conn, cat, k.Name, "", "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if tot, ok := res.Total(); ok {
			want[k.Name] = display.Value(tot.Result, k, cfg.Events.ReportingCurrency)
			status[k.Name], _ = display.Status(k, tot.Result)
		}
	}
	// A crossing: a KPI on track now, written off track yesterday.
	var crossed string
	for _, k := range exec_ {
		if status[k.Name] == "on track" && k.Target != nil && *k.Target > 0 {
			crossed = k.Name
			off := *k.Target / 2
			if k.Direction == catalog.LowerIsBetter {
				off = *k.Target * 2
			}
			yesterday := time.Now().UTC().Truncate(24 * time.Hour).Add(-12 * time.Hour)
			if err := transform.WriteResult(ctx, conn, transform.Result{KPI: k.Name, ComputedAt: yesterday, Window: k.Window.String(),
				Series: []transform.Series{{Result: off}}}); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if crossed == "" {
		t.Fatalf("no exec KPI is on track on the generated data: %v", status)
	}

	// The page as Chromium renders it, once it shows the crossing.
	var dom string
	waitFor(t, 60*time.Second, "the scorecard to show the crossing", func() bool {
		out, err := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir="+t.TempDir(),
			"--dump-dom", "http://"+addr+"/scorecard").Output()
		dom = string(out)
		m := winsRe.FindStringSubmatch(dom)
		return err == nil && m != nil && strings.Contains(m[1], ">"+html.EscapeString(titleOf(cat, crossed))+"<")
	})
	rows := map[string][2]string{}
	for _, m := range rowRe.FindAllStringSubmatch(dom, -1) {
		v, s := valueRe.FindStringSubmatch(m[2]), statRe.FindStringSubmatch(m[2])
		if v == nil || s == nil {
			t.Fatalf("row %s lacks its value or status cell:\n%s", m[1], m[2])
		}
		rows[m[1]] = [2]string{html.UnescapeString(strings.TrimSpace(v[1])), strings.TrimSpace(s[1])}
	}
	for _, k := range exec_ {
		got, ok := rows[k.Name]
		switch {
		case !ok:
			t.Errorf("%s is not on the scorecard", k.Name)
		case want[k.Name] == "":
			if got[0] != "—" {
				t.Errorf("%s shows %q, but kpis query has no value", k.Name, got[0])
			}
		case got[0] != want[k.Name] || got[1] != status[k.Name]:
			t.Errorf("%s shows %q %q, kpis query gives %q %q", k.Name, got[0], got[1], want[k.Name], status[k.Name])
		}
	}

	// A screenshot, kept where the test's output goes, and not blank.
	dir := filepath.Join("..", ".run", "test-artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot, _ := filepath.Abs(filepath.Join(dir, "scorecard.png"))
	if out, err := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir="+t.TempDir(),
		"--window-size=1200,1400", "--screenshot="+shot, "http://"+addr+"/scorecard").CombinedOutput(); err != nil {
		t.Fatalf("screenshot: %v\n%s", err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	colours := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			r, g, bl, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, bl, a}] = true
		}
	}
	if len(colours) < 20 {
		t.Errorf("the screenshot %s looks blank (%d colours)", shot, len(colours))
	}
	t.Logf("scorecard screenshot: %s (%d exec KPIs, win: %s)", shot, len(exec_), crossed)
}

func titleOf(cat *catalog.Catalog, name string) string {
	k, _ := cat.Get(name)
	return k.Title
}
