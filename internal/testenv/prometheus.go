package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// promJob is the job name StartPrometheus scrapes the target as, the one
// the generated dashboards and rules select.
const promJob = "kpibridge"

// StartPrometheus starts the real Prometheus server (Debian package
// prometheus) scraping scrapeTarget every second as job kpibridge and
// evaluating ruleFiles every second, and returns its address once it is
// ready. The server is killed when the test ends; its log is shown when the
// test failed.
func StartPrometheus(t testing.TB, scrapeTarget string, ruleFiles ...string) (addr string) {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	Require(t, err == nil, "prometheus (Debian package prometheus)")
	var rules []string
	for _, f := range ruleFiles {
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatalf("rule file %s: %v", f, err)
		}
		rules = append(rules, abs)
	}
	type staticConfig struct {
		Targets []string `yaml:"targets"`
	}
	type scrapeConfig struct {
		JobName       string         `yaml:"job_name"`
		StaticConfigs []staticConfig `yaml:"static_configs"`
	}
	cfg, err := yaml.Marshal(struct {
		Global        map[string]string `yaml:"global"`
		RuleFiles     []string          `yaml:"rule_files,omitempty"`
		ScrapeConfigs []scrapeConfig    `yaml:"scrape_configs"`
	}{
		Global:        map[string]string{"scrape_interval": "1s", "evaluation_interval": "1s"},
		RuleFiles:     rules,
		ScrapeConfigs: []scrapeConfig{{JobName: promJob, StaticConfigs: []staticConfig{{Targets: []string{scrapeTarget}}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	addr = FreeAddr(t)
	cmd := exec.Command(bin, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	showLog := func() {
		b, _ := os.ReadFile(logFile.Name())
		t.Logf("prometheus log:\n%s", b)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logFile.Close()
		if t.Failed() {
			showLog()
		}
	})

	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("prometheus exited before it was ready: %v (config:\n%s)", err, cfg)
		default:
		}
		if res, err := client.Get("http://" + addr + "/-/ready"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus at %s not ready after 30s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Sample is one series of an instant query's result.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// PromQuery runs q as an instant query on the Prometheus server at addr and
// returns its series: none when the query has no data, one for a scalar. The
// error carries Prometheus's own message when it rejects the query.
func PromQuery(ctx context.Context, addr, q string) ([]Sample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := PromAPI(ctx, addr, "/api/v1/query?query="+url.QueryEscape(q), &data); err != nil {
		return nil, err
	}
	switch data.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(data.Result, &vec); err != nil {
			return nil, fmt.Errorf("decode vector: %w", err)
		}
		out := make([]Sample, 0, len(vec))
		for _, s := range vec {
			v, err := sampleValue(s.Value)
			if err != nil {
				return nil, err
			}
			out = append(out, Sample{Metric: s.Metric, Value: v})
		}
		return out, nil
	case "scalar":
		var s [2]any
		if err := json.Unmarshal(data.Result, &s); err != nil {
			return nil, fmt.Errorf("decode scalar: %w", err)
		}
		v, err := sampleValue(s)
		if err != nil {
			return nil, err
		}
		return []Sample{{Value: v}}, nil
	}
	return nil, fmt.Errorf("result type %q: only vector and scalar are supported", data.ResultType)
}

// PromAPI GETs path from the Prometheus HTTP API at addr and decodes the
// answer's data into data. The error carries Prometheus's own message when
// it refuses the request.
func PromAPI(ctx context.Context, addr, path string, data any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	var body struct {
		Status    string          `json:"status"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		return fmt.Errorf("decode answer of %s (HTTP %s): %w", addr, res.Status, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("%s: %s", body.ErrorType, body.Error)
	}
	if err := json.Unmarshal(body.Data, data); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

// sampleValue reads the value of a [timestamp, "value"] pair.
func sampleValue(p [2]any) (float64, error) {
	s, ok := p[1].(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", p[1])
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("sample value %q: %w", s, err)
	}
	return v, nil
}
