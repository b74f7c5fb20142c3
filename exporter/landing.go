package exporter

import (
	"html/template"
	"net/http"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/display"
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
<a href="/scorecard">executive scorecard</a> · <a href="/metrics">/metrics</a> · <a href="/-/healthy">/-/healthy</a> · <a href="/-/ready">/-/ready</a></p>
{{if .KPIs}}
<table>
<tr><th>KPI</th><th>owner</th><th class="num">latest value</th><th class="num">target</th><th>status</th><th>freshness</th></tr>
{{range .KPIs}}<tr id="{{.Name}}">
<td><b>{{.Title}}</b> <small>({{.Name}}, {{.Window}})</small><br><small>{{.Description}}</small>{{if .DocsLink}} <a href="{{.DocsLink}}">definition</a>{{end}}</td>
<td>{{.Team}}<br><small>{{.Contact}}</small></td>
<td class="num">{{.Value}}</td><td class="num">{{.Target}}</td>
<td class="{{.StatusClass}}">{{.Status}}</td><td{{if .ComputedAt}} title="{{.ComputedAt}}"{{end}}>{{.Freshness}}</td>
</tr>
{{end}}</table>
{{else}}<p class="muted">The export role does not run in this process: no KPIs here.</p>{{end}}
</body></html>
`))

type landingRow struct {
	Name, Title, Description, Window, Team, Contact, DocsLink string
	Value, Target, Status, StatusClass, Freshness             string
	ComputedAt                                                string // RFC 3339, UTC
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
		Team: k.Owner.Team, Contact: k.Owner.Contact, Value: display.Missing, Target: display.Target(k, currency(o)),
		Status: "no value yet", StatusClass: "muted", Freshness: "never computed"}
	if o.DocsURL != "" {
		r.DocsLink = o.DocsURL + "#" + k.Name
	}
	if at.IsZero() {
		if lastErr != nil {
			r.Status, r.StatusClass = "failing: "+lastErr.Error(), "bad"
		}
		return r
	}
	age := now.Sub(at)
	r.Freshness, r.ComputedAt = computed(at, now), at.UTC().Format(time.RFC3339)
	if age > time.Duration(o.Staleness)*time.Duration(k.Refresh) {
		r.Status, r.StatusClass = "stale", "bad"
		return r
	}
	total, ok := res.Total()
	if !ok {
		r.Status = "no value (no data or zero denominator)"
		return r
	}
	r.Value = display.Value(total.Result, k, currency(o))
	r.Status, r.StatusClass = display.Status(k, total.Result)
	if lastErr != nil {
		r.Status += "; last run failed"
	}
	return r
}

// DefaultCurrency is the landing page's reporting currency when
// HandlerOptions.Currency is empty (the default of events.reporting_currency).
const DefaultCurrency = "EUR"

func currency(o HandlerOptions) string {
	if o.Currency == "" {
		return DefaultCurrency
	}
	return o.Currency
}

// computed says when a value was computed, in UTC, and how long ago:
// "computed 12:04:05 UTC, 20 s ago" (with the date when it is not today's).
func computed(at, now time.Time) string {
	at, layout := at.UTC(), "15:04:05"
	if at.Format(time.DateOnly) != now.UTC().Format(time.DateOnly) {
		layout = time.DateTime
	}
	return "computed " + at.Format(layout) + " UTC, " + display.Duration(now.Sub(at).Round(time.Second)) + " ago"
}
