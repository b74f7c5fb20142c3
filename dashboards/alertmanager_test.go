package dashboards_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/dashboards"
	"github.com/kpibridge/kpibridge/internal/testenv"
)

// Alertmanager loads the committed configuration: the inhibit rules and a
// receiver and a page receiver per team, and celebrate.
func TestAlertmanagerConfigIsValid(t *testing.T) {
	out := run(t, "amtool", "check-config", "alertmanager.yml")
	receivers := fmt.Sprintf("%d receivers", 2*(len(dashboards.Routes())-1)+1)
	for _, want := range []string{"SUCCESS", "3 inhibit rules", receivers} {
		if !strings.Contains(out, want) {
			t.Errorf("amtool check-config alertmanager.yml does not say %q:\n%s", want, out)
		}
	}
}

// Alerts reach their owner team, critical ones the team's page receiver,
// wins the celebrate receiver whoever owns the KPI.
func TestAlertmanagerRoutes(t *testing.T) {
	amtool := tool(t, "amtool")
	tests := []struct {
		name   string
		labels []string
		want   string
	}{
		{"marketing warning", []string{"alertname=KPIOffTarget", "kpi=leads", "team=marketing", "severity=warning"}, "marketing"},
		{"marketing critical", []string{"alertname=KPIPastWarning", "kpi=leads", "team=marketing", "severity=critical"}, "marketing-page"},
		{"sales warning", []string{"alertname=KPIRegression", "kpi=win_rate", "team=sales", "severity=warning"}, "sales"},
		{"sales critical", []string{"alertname=KPIPastWarning", "kpi=win_rate", "team=sales", "severity=critical"}, "sales-page"},
		{"finance warning", []string{"alertname=KPIOffTarget", "kpi=revenue", "team=finance", "severity=warning"}, "finance"},
		{"finance critical", []string{"alertname=KPIPastWarning", "kpi=revenue", "team=finance", "severity=critical"}, "finance-page"},
		{"it warning", []string{"alertname=KPIBridgeDeadLetters", "topic=crm.events", "team=it", "severity=warning"}, "it"},
		{"it critical", []string{"alertname=KPIBridgeDown", "instance=kpibridge:9108", "team=it", "severity=critical"}, "it-page"},
		{"marketing win", []string{"alertname=KPITargetReached", "kpi=leads", "team=marketing", "kind=win", "severity=info"}, "celebrate"},
		{"sales win", []string{"alertname=KPITargetReached", "kpi=win_rate", "team=sales", "kind=win", "severity=info"}, "celebrate"},
		{"finance win", []string{"alertname=KPITargetReached", "kpi=revenue", "team=finance", "kind=win", "severity=info"}, "celebrate"},
		{"it win", []string{"alertname=KPITargetReached", "kpi=identity_match_rate", "team=it", "kind=win", "severity=info"}, "celebrate"},
		{"unknown team falls back to it", []string{"alertname=KPIOffTarget", "kpi=leads", "team=legal", "severity=critical"}, "it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"config", "routes", "test", "--config.file=alertmanager.yml"}, tt.labels...)
			cmd := exec.Command(amtool, args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("amtool %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
			}
			if got := strings.TrimSpace(string(out)); got != tt.want {
				t.Errorf("%v routes to %q, want %q", tt.labels, got, tt.want)
			}
		})
	}
}

// The real Alertmanager, with the committed configuration, holds back a
// stale KPI's own alerts (and no other KPI's), off target while past the
// warning threshold, and every KPI value alert while kpibridge is not
// ready; alerts about the pipeline itself are never held back.
func TestAlertmanagerInhibitsKPIAlerts(t *testing.T) {
	am := startAlertmanager(t)
	alerts := map[string]map[string]string{
		"stale leads":                {"alertname": "KPIStale", "kpi": "leads", "team": "marketing", "severity": "warning"},
		"regression leads":           {"alertname": "KPIRegression", "kpi": "leads", "team": "marketing", "severity": "warning"},
		"regression cac":             {"alertname": "KPIRegression", "kpi": "cac", "team": "marketing", "severity": "warning"},
		"evaluation errors leads":    {"alertname": "KPIBridgeEvaluationErrors", "kpi": "leads", "team": "it", "severity": "warning"},
		"past warning new_customers": {"alertname": "KPIPastWarning", "kpi": "new_customers", "team": "marketing", "severity": "critical"},
		"off target new_customers":   {"alertname": "KPIOffTarget", "kpi": "new_customers", "team": "marketing", "severity": "warning"},
		"off target cac":             {"alertname": "KPIOffTarget", "kpi": "cac", "team": "marketing", "severity": "warning"},
		"not ready":                  {"alertname": "KPIBridgeNotReady", "instance": "kpibridge-1:9108", "job": "kpibridge", "team": "it", "severity": "critical"},
		"off target revenue":         {"alertname": "KPIOffTarget", "kpi": "revenue", "team": "finance", "severity": "warning"},
	}
	// Each step posts alerts to those already firing and states what every
	// firing alert looks like then: active, or suppressed by which alert.
	// Alertmanager names one inhibiting alert, of the first inhibit rule
	// (in config order: stale, not ready, past warning) that mutes it.
	steps := []struct {
		name string
		post []string
		want map[string]amStatus
	}{
		{
			name: "stale KPI and past warning",
			post: []string{"stale leads", "regression leads", "regression cac", "evaluation errors leads",
				"past warning new_customers", "off target new_customers", "off target cac"},
			want: map[string]amStatus{
				"stale leads":                {state: "active", receiver: "marketing"},
				"regression leads":           {state: "suppressed", receiver: "marketing", inhibitedBy: []string{"stale leads"}},
				"regression cac":             {state: "active", receiver: "marketing"},
				"evaluation errors leads":    {state: "active", receiver: "it"},
				"past warning new_customers": {state: "active", receiver: "marketing-page"},
				"off target new_customers":   {state: "suppressed", receiver: "marketing", inhibitedBy: []string{"past warning new_customers"}},
				"off target cac":             {state: "active", receiver: "marketing"},
			},
		},
		{
			name: "kpibridge not ready",
			post: []string{"not ready", "off target revenue"},
			want: map[string]amStatus{
				"stale leads":                {state: "active", receiver: "marketing"},
				"regression leads":           {state: "suppressed", receiver: "marketing", inhibitedBy: []string{"stale leads"}},
				"regression cac":             {state: "suppressed", receiver: "marketing", inhibitedBy: []string{"not ready"}},
				"evaluation errors leads":    {state: "active", receiver: "it"},
				"past warning new_customers": {state: "suppressed", receiver: "marketing-page", inhibitedBy: []string{"not ready"}},
				"off target new_customers":   {state: "suppressed", receiver: "marketing", inhibitedBy: []string{"not ready"}},
				"off target cac":             {state: "suppressed", receiver: "marketing", inhibitedBy: []string{"not ready"}},
				"not ready":                  {state: "active", receiver: "it-page"},
				"off target revenue":         {state: "suppressed", receiver: "finance", inhibitedBy: []string{"not ready"}},
			},
		},
	}
	for _, step := range steps {
		var post []map[string]string
		for _, name := range step.post {
			post = append(post, alerts[name])
		}
		am.post(t, post)
		am.waitFor(t, step.name, alerts, step.want)
	}
}

// amStatus is what the Alertmanager API says of one alert, with the
// alerts that inhibit it named by their keys in the test.
type amStatus struct {
	state       string
	receiver    string
	inhibitedBy []string
}

func (s amStatus) String() string {
	return fmt.Sprintf("%s to %s, inhibited by %v", s.state, s.receiver, s.inhibitedBy)
}

// alertmanager is a running Alertmanager process.
type alertmanager struct {
	url string
	log string // path of its log
}

// startAlertmanager runs the real Alertmanager with alertmanager.yml on a
// free loopback port, clustering off, until the test ends; its log is
// printed when the test fails.
func startAlertmanager(t *testing.T) *alertmanager {
	t.Helper()
	var bin string
	for _, name := range []string{"prometheus-alertmanager", "alertmanager"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	testenv.Require(t, bin != "", "prometheus-alertmanager (Alertmanager, on PATH)")
	dir := t.TempDir()
	addr := testenv.FreeAddr(t)
	am := &alertmanager{url: "http://" + addr, log: filepath.Join(dir, "alertmanager.log")}
	logFile, err := os.Create(am.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file=alertmanager.yml", "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=debug")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(am.log)
			t.Logf("alertmanager log:\n%s", b)
		}
	})
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logFile.Close()
	})

	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("alertmanager exited before it was ready: %v", err)
		default:
		}
		if resp, err := http.Get(am.url + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return am
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("alertmanager at %s not ready after 30s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// post sends alerts, given by their labels, that keep firing for 10 minutes.
func (am *alertmanager) post(t *testing.T, alerts []map[string]string) {
	t.Helper()
	type postable struct {
		Labels   map[string]string `json:"labels"`
		StartsAt time.Time         `json:"startsAt"`
		EndsAt   time.Time         `json:"endsAt"`
	}
	now := time.Now().UTC()
	var body []postable
	for _, labels := range alerts {
		body = append(body, postable{Labels: labels, StartsAt: now, EndsAt: now.Add(10 * time.Minute)})
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, am.url+"/api/v2/alerts", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post alerts: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var msg bytes.Buffer
		_, _ = msg.ReadFrom(resp.Body)
		t.Fatalf("post alerts: %s: %s", resp.Status, msg.Bytes())
	}
}

// status returns what the API says of every alert, by its key in names.
func (am *alertmanager) status(names map[string]map[string]string) (map[string]amStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, am.url+"/api/v2/alerts", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/v2/alerts: %s", resp.Status)
	}
	var got []struct {
		Fingerprint string            `json:"fingerprint"`
		Labels      map[string]string `json:"labels"`
		Receivers   []struct {
			Name string `json:"name"`
		} `json:"receivers"`
		Status struct {
			State       string   `json:"state"`
			InhibitedBy []string `json:"inhibitedBy"`
		} `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		return nil, fmt.Errorf("decode /api/v2/alerts: %w", err)
	}
	key := func(labels map[string]string) string {
		for name, l := range names {
			if maps.Equal(l, labels) {
				return name
			}
		}
		return fmt.Sprint(labels)
	}
	byFingerprint := map[string]string{}
	for _, a := range got {
		byFingerprint[a.Fingerprint] = key(a.Labels)
	}
	out := map[string]amStatus{}
	for _, a := range got {
		s := amStatus{state: a.Status.State}
		var receivers []string
		for _, r := range a.Receivers {
			receivers = append(receivers, r.Name)
		}
		s.receiver = strings.Join(receivers, ",")
		for _, fp := range a.Status.InhibitedBy {
			s.inhibitedBy = append(s.inhibitedBy, byFingerprint[fp])
		}
		slices.Sort(s.inhibitedBy)
		out[key(a.Labels)] = s
	}
	return out, nil
}

// waitFor polls the API for up to 30s until every alert is as wanted, and
// no other alert is there.
func (am *alertmanager) waitFor(t *testing.T, step string, names map[string]map[string]string, want map[string]amStatus) {
	t.Helper()
	for _, s := range want {
		slices.Sort(s.inhibitedBy)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := am.status(names)
		if err == nil && statusesEqual(got, want) {
			return
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("%s: %v", step, err)
			}
			var diff []string
			for name := range names {
				g, gok := got[name]
				w, wok := want[name]
				if gok != wok || g.String() != w.String() {
					diff = append(diff, fmt.Sprintf("  %s: got %v (present %t), want %v (present %t)", name, g, gok, w, wok))
				}
			}
			slices.Sort(diff)
			t.Fatalf("%s: alerts not as wanted after 30s:\n%s", step, strings.Join(diff, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func statusesEqual(got, want map[string]amStatus) bool {
	if len(got) != len(want) {
		return false
	}
	for name, w := range want {
		if g, ok := got[name]; !ok || g.String() != w.String() {
			return false
		}
	}
	return true
}
