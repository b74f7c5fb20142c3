package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/config"
	"github.com/kpibridge/kpibridge/dashboards"
	"github.com/kpibridge/kpibridge/transform"
)

// DemoAlertFor is how long a demo KPI stays off target before it alerts
// (production catalogs default to 1h), so alerts show up within minutes.
const DemoAlertFor = time.Minute

// monitoring is the Prometheus and Alertmanager the demo runs.
type monitoring struct {
	procs []*exec.Cmd
	dir   string
}

// startMonitoring generates the dashboards, rules and Alertmanager
// configuration for the demo's catalog into dir, and starts Debian's
// prometheus and prometheus-alertmanager with them, Prometheus scraping
// kpibridge at scrape.
func startMonitoring(ctx context.Context, cfg config.Config, dir, scrape, promListen, amListen string) (*monitoring, error) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		return nil, errors.New("--prometheus needs the prometheus binary: apt-get install prometheus (make deps installs it)")
	}
	amBin, err := lookPath("prometheus-alertmanager", "alertmanager")
	if err != nil {
		return nil, errors.New("--prometheus needs Alertmanager: apt-get install prometheus-alertmanager (make deps installs it)")
	}
	cat, err := transform.LoadCatalog(cfg.Transform)
	if err != nil {
		return nil, err
	}
	for i := range cat.KPIs {
		cat.KPIs[i].Alert.OffTargetFor = catalog.Duration(DemoAlertFor)
	}
	dcfg := dashboards.DefaultConfig()
	dcfg.Currency = cfg.Events.ReportingCurrency
	dcfg.WinWindow = catalog.Duration(30 * time.Minute)
	gen := filepath.Join(dir, "dashboards")
	if _, err := dashboards.Write(gen, cat, dcfg); err != nil {
		return nil, fmt.Errorf("generate the demo's rules: %w", err)
	}
	promCfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(promCfg, []byte(fmt.Sprintf(`# Written by kpibridge demo --prometheus.
global: {scrape_interval: 5s, evaluation_interval: 5s}
rule_files: [%q, %q]
alerting:
  alertmanagers: [{static_configs: [{targets: [%q]}]}]
scrape_configs:
  - job_name: %s
    static_configs: [{targets: [%q]}]
`, filepath.Join(gen, dashboards.FileRules), filepath.Join(gen, dashboards.FileAlerts), amListen, dcfg.Job, scrape)), 0o644); err != nil {
		return nil, err
	}
	m := &monitoring{dir: dir}
	if err := m.start(ctx, "alertmanager", amBin, "--config.file="+filepath.Join(gen, dashboards.FileAlertmanager),
		"--storage.path="+filepath.Join(dir, "alertmanager"), "--web.listen-address="+amListen, "--cluster.listen-address="); err != nil {
		return nil, err
	}
	if err := m.start(ctx, "prometheus", promBin, "--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(dir, "prometheus"),
		"--web.listen-address="+promListen); err != nil {
		m.stop()
		return nil, err
	}
	for _, u := range []string{"http://" + amListen + "/-/ready", "http://" + promListen + "/-/ready"} {
		if err := waitReady(ctx, u, 30*time.Second); err != nil {
			m.stop()
			return nil, fmt.Errorf("%w (logs in %s)", err, dir)
		}
	}
	return m, nil
}

func lookPath(names ...string) (string, error) {
	var err error
	for _, n := range names {
		var p string
		if p, err = exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", err
}

// start runs a process logging to <dir>/<name>.log.
func (m *monitoring) start(ctx context.Context, name, bin string, args ...string) error {
	log, err := os.Create(filepath.Join(m.dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	m.procs = append(m.procs, cmd)
	return nil
}

// stop ends the processes and waits for them.
func (m *monitoring) stop() {
	for _, p := range m.procs {
		_ = p.Process.Signal(os.Interrupt)
	}
	for _, p := range m.procs {
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
	}
}

func waitReady(ctx context.Context, url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		res, err := http.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is not ready after %s", url, within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
