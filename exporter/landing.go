package exporter

import (
	"html/template"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/transform"
)

var landingTmpl = template.Must(template.New("landing").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>kpibridge</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;width:100%}th,td{padding:.35rem .6rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
th{background:#f4f4f4}.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1a7f37}.warn{color:#9a6700}.bad{color:#cf222e}.muted{color:#777}
small{color:#555}
</style></head><body>
<h1>kpibridge</h1>
<p>Roles in this process: {{range $i, $r := .Roles}}{{if $i}}, {{end}}{{$r}}{{end}} · version {{.Version}} ·
<a href="/metrics">/metrics</a> · <a href="/-/healthy">/-/healthy</a> · <a href="/-/ready">/-/ready</a></p>
{{if .KPIs}}
<table>
<tr><th>KPI</th><th>owner</th><th class="num">latest value</th><th class="num">target</th><th>status</th><th>freshness</th></tr>
{{range .KPIs}}<tr id="{{.Name}}">
<td><b>{{.Title}}</b> <small>({{.Name}}, {{.Window}})</small><br><small>{{.Description}}</small>{{if .DocsLink}} <a href="{{.DocsLink}}">definition</a>{{end}}</td>
<td>{{.Team}}<br><small>{{.Contact}}</small></td>
<td class="num">{{.Value}}</td><td class="num">{{.Target}}</td>
<td class="{{.StatusClass}}">{{.Status}}</td><td>{{.Freshness}}</td>
</tr>
{{end}}</table>
{{else}}<p class="muted">The export role does not run in this process: no KPIs here.</p>{{end}}
</body></html>
`))

type landingRow struct {
	Name, Title, Description, Window, Team, Contact, DocsLink string
	Value, Target, Status, StatusClass, Freshness             string
}

func landingPage(o HandlerOptions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		data := struct {
			Roles   []string
			Version string
			KPIs    []landingRow
		}{Roles: o.Roles, Version: o.Version}
		if o.Snapshots != nil {
			if snap := o.Snapshots.Snapshot(); snap != nil {
				now := time.Now()
				if o.Now != nil {
					now = o.Now()
				}
				for _, st := range snap.KPIs {
					data.KPIs = append(data.KPIs, row(st.KPI, st.LastSuccess.ComputedAt, st.LastSuccess, st.Last.Err, now, o))
				}
			}
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := landingTmpl.Execute(w, data); err != nil {
			o.Logger.Error("render landing page", "err", err)
		}
	})
}

func row(k catalog.KPI, at time.Time, res transform.Result, lastErr error, now time.Time, o HandlerOptions) landingRow {
	r := landingRow{Name: k.Name, Title: k.Title, Description: k.Description, Window: k.Window.String(),
		Team: k.Owner.Team, Contact: k.Owner.Contact, Value: "—", Target: "—", Status: "no value yet", StatusClass: "muted", Freshness: "never computed"}
	if o.DocsURL != "" {
		r.DocsLink = o.DocsURL + "#" + k.Name
	}
	if k.Target != nil {
		r.Target = format(*k.Target, k.Unit)
	}
	if at.IsZero() {
		if lastErr != nil {
			r.Status, r.StatusClass = "failing: "+lastErr.Error(), "bad"
		}
		return r
	}
	age := now.Sub(at)
	r.Freshness = age.Round(time.Second).String() + " ago"
	if age > time.Duration(o.Staleness)*time.Duration(k.Refresh) {
		r.Status, r.StatusClass = "stale", "bad"
		return r
	}
	total, ok := res.Total()
	if !ok {
		r.Status = "no value (no data or zero denominator)"
		return r
	}
	r.Value = format(total.Result, k.Unit)
	r.Status, r.StatusClass = Status(k, total.Result)
	if lastErr != nil {
		r.Status += "; last run failed"
	}
	return r
}

// Status says where a value stands against the KPI's target and warning.
func Status(k catalog.KPI, v float64) (text, class string) {
	if k.Target == nil {
		return "no target", "muted"
	}
	better := func(a, b float64) bool {
		if k.Direction == catalog.HigherIsBetter {
			return a >= b
		}
		return a <= b
	}
	switch {
	case better(v, *k.Target):
		return "on target", "ok"
	case k.Warning != nil && better(v, *k.Warning):
		return "below target", "warn"
	}
	return "off target", "bad"
}

func format(v float64, u catalog.Unit) string {
	switch u {
	case catalog.UnitPercent:
		return strconv.FormatFloat(v, 'f', 2, 64) + " %"
	case catalog.UnitRatio:
		return strconv.FormatFloat(v, 'f', 3, 64)
	case catalog.UnitCount:
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	case catalog.UnitSeconds:
		return (time.Duration(v) * time.Second).String()
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}
