package generate

import (
	"math"

	"github.com/kpibridge/kpibridge/events"
)

// This file is the simulation of one day: what each customer does, and
// what the marketing systems report about it.

var (
	pageURLs = func() []string {
		u := make([]string, len(pages))
		for i, p := range pages {
			u[i] = site + p
		}
		return u
	}()
	appVersions = []string{"4.10.2", "4.11.0", "4.11.1", "4.12.0"}
	smbForms    = []string{"newsletter_signup", "trial_signup", "whitepaper_download", "newsletter_signup"}
	b2bForms    = []string{"demo_request", "contact_sales", "webinar_registration", "whitepaper_download"}
	refundWhy   = []string{"damaged", "not_as_described", "changed_mind", "late_delivery"}
	cancelWhy   = []string{"price", "missing_features", "switched_vendor", "no_longer_needed", "budget_cut"}
	plans       = []struct {
		name string
		mrr  float64
	}{{"starter", 19}, {"team", 49}, {"business", 99}, {"pro", 199}}
	// Where orders are placed, by segment, in events.OrderChannels order.
	orderChannelW = [3][]float64{
		segSMB:        {55, 25, 15, 3, 2},
		segMid:        {40, 5, 5, 30, 20},
		segEnterprise: {15, 0, 0, 45, 40},
	}
	orderSources = []string{"shopify", "shopify", "shopify_pos", "salesforce", "partner_portal"}
)

// Funnel: chance of moving on from each stage (before the customer's
// quality), and the days each step takes.
var (
	advanceP  = [4]float64{0.65, 0.55, 0.7, 0}
	winP      = [3]float64{segSMB: 0.6, segMid: 0.35, segEnterprise: 0.25}
	stepDays  = [4][2]int{{1, 7}, {2, 10}, {3, 14}, {0, 0}}
	closeDays = [3][2]int{segSMB: {1, 7}, segMid: {10, 40}, segEnterprise: {20, 65}}
	// Daily chance that a subscription is cancelled, by segment.
	churnHazard = [3]float64{segSMB: 0.004, segMid: 0.0015, segEnterprise: 0.0008}
	// Mean days between repeat orders, by segment.
	orderGap = [3]float64{segSMB: 24, segMid: 45, segEnterprise: 70}
)

// simulateDay emits every event of simulated day d.
func (g *gen) simulateDay(d int) {
	g.d = d
	g.dayStart = g.start + int64(d)*86400
	if d == 0 || g.dayOfMonth(d) == 1 {
		g.martechCosts()
	}
	for i := range g.camps {
		c := &g.camps[i]
		c.visits, c.sends, c.clicks = 0, 0, 0
	}
	for i := range g.cust {
		if g.err != nil {
			return
		}
		if int(g.cust[i].arrival) <= d {
			g.customerDay(i)
		}
	}
	g.dailyStats()
}

// at returns the time of the customer's next event today: the first event
// of the day starts a session at a random hour, later ones follow it.
func (g *gen) at(minGap, maxGap int) int64 {
	if !g.cursorSet {
		g.cursor = g.dayStart + int64(hourTable[g.r.IntN(256)])*3600 + int64(g.r.IntN(3600))
		g.cursorSet = true
	} else {
		g.cursor += int64(minGap + g.r.IntN(maxGap-minGap+1))
	}
	if end := g.dayStart + 86399; g.cursor > end {
		g.cursor = end
	}
	return g.cursor
}

// localOffset is the customer's UTC offset today, for producers that write
// local time.
func (g *gen) localOffset(c *customer) int32 {
	if c.country == 0xff {
		return 0
	}
	z := g.countries.zones[c.country]
	if g.summer[g.d] {
		return z[1]
	}
	return z[0]
}

func (g *gen) anon(i int) val      { return hexID("anon_", mix(g.anonKey+uint64(i))) }
func (g *gen) crm(i int) val       { return hexID("cnt_", mix(g.crmKey+uint64(i))) }
func email(i int, style uint8) val { return val{kind: vEmail, n: int64(i), style: style} }

func (g *gen) crmSource(c *customer) string {
	if c.segment == segSMB {
		return "hubspot"
	}
	return "salesforce"
}

// money converts a price in the reporting currency into cents of the
// customer's currency.
func (g *gen) money(c *customer, price float64) (int64, string) {
	cur := &g.cur.list[c.cur]
	return int64(math.Round(price / cur.rate * 100)), cur.code
}

func (g *gen) customerDay(i int) {
	c := &g.cust[i]
	d := int32(g.d)
	r := g.r
	g.cursorSet = false
	identified := c.stage != stNone

	if d == c.arrival {
		g.visit(i, int(c.campaign), true)
	} else {
		p := c.visitP
		switch age := float32(d - c.arrival); {
		case c.stage == stCustomer:
			p *= 0.6
		case identified:
			p *= 14 / (14 + age)
		default:
			p *= 6 / (6 + age)
		}
		if r.Float32() < p {
			camp := -1
			if r.Float64() < 0.15 {
				camp = g.pickCampaign(g.d, true)
			}
			g.visit(i, camp, false)
			if r.Float64() < 0.3 {
				g.visit(i, -1, false)
			}
		}
	}
	if c.flags&fApp != 0 && d >= c.appFrom && r.Float64() < 0.25 {
		g.appSession(i)
	}
	switch d {
	case c.formDay:
		g.identify(i)
	case c.nextStage:
		g.advance(i)
	}
	if !identified {
		return
	}
	if c.flags&fUnsubscribed == 0 {
		g.emails(i)
	}
	if c.stage == stCustomer {
		if d == c.nextOrder {
			g.order(i, false)
		}
		if d == c.refundDay {
			g.refund(i)
		}
		if d == c.cancelDay {
			g.cancel(i)
		}
	}
	if r.Float64() < 0.003 {
		g.upsertContact(i, g.at(60, 3600))
	}
}

// visit emits a web.visit; camp is the campaign the visit came from, -1
// for none.
func (g *gen) visit(i, camp int, first bool) {
	c := &g.cust[i]
	r := g.r
	m := &g.m
	m.reset(events.TypeWebVisit, g.at(15, 900), "segment")
	m.ms = int16(r.IntN(1000))
	if r.Float64() < 0.25 {
		m.off = g.localOffset(c)
	}
	m.ident.anon = g.anon(i)
	if c.stage != stNone && r.Float64() < 0.5 {
		m.ident.crm = g.crm(i) // logged in
	}
	url, ref := pageURLs[r.IntN(len(pageURLs))], ""
	if camp >= 0 {
		cp := &g.camps[camp]
		m.camp = camp
		cp.visits++
		if first || r.Float64() < 0.7 {
			url = cp.url
		}
		if refs := cp.ch.referrers; len(refs) > 0 {
			ref = refs[r.IntN(len(refs))]
		}
	} else if !first && r.Float64() < 0.4 {
		ref = site + "/"
	}
	m.add("url", str(url))
	if ref != "" {
		m.add("referrer", str(ref))
	}
	if r.Float64() < 0.2 {
		m.add("page_title", str(titles[r.IntN(len(titles))]))
	}
	g.emit(m)
}

func (g *gen) appSession(i int) {
	c := &g.cust[i]
	r := g.r
	m := &g.m
	m.reset(events.TypeAppSession, g.at(30, 1800), "firebase")
	m.ms = int16(r.IntN(1000))
	m.off = g.localOffset(c)
	m.ident.anon = g.anon(i)
	if c.stage != stNone {
		m.ident.crm = g.crm(i)
	}
	platform := "android"
	if c.flags&fIOS != 0 {
		platform = "ios"
	}
	m.add("platform", str(platform))
	m.add("app_version", str(appVersions[r.IntN(len(appVersions))]))
	m.add("duration_seconds", num(int64(10+r.IntN(900))))
	g.emit(m)
}

// identify is the day a visitor fills in a form: the form links the
// anonymous visitor to an email, and the CRM creates a lead.
func (g *gen) identify(i int) {
	c := &g.cust[i]
	r := g.r
	m := &g.m
	src, forms := "typeform", smbForms
	if c.segment != segSMB {
		src, forms = "hubspot", b2bForms
	}
	m.reset(events.TypeFormSubmitted, g.at(30, 600), src)
	if r.Float64() < 0.5 {
		m.off = g.localOffset(c)
	}
	m.ident.anon = g.anon(i)
	m.ident.email = email(i, emailAsTyped)
	m.add("form_id", str(forms[r.IntN(len(forms))]))
	m.add("page_url", str(pageURLs[r.IntN(len(pageURLs))]))
	g.emit(m)

	c.stage = stLead
	g.upsertContact(i, g.at(5, 90))
	g.stage(i, stLead, g.at(1, 30))
	c.nextStage = int32(g.d) + int32(stepDays[stLead][0]+r.IntN(stepDays[stLead][1]-stepDays[stLead][0]+1))
}

func (g *gen) upsertContact(i int, at int64) {
	c := &g.cust[i]
	m := &g.m
	m.reset(events.TypeContactUpserted, at, g.crmSource(c))
	m.ident.crm = g.crm(i)
	m.ident.email = email(i, emailLower)
	m.add("segment", str(segments[c.segment]))
	if c.country != 0xff {
		m.add("country", str(g.countries.codes[c.country]))
	}
	g.emit(m)
}

func (g *gen) stage(i, stage int, at int64) {
	c := &g.cust[i]
	m := &g.m
	m.reset(events.TypeLeadStageChanged, at, g.crmSource(c))
	m.ident.crm = g.crm(i)
	m.add("stage", str(events.Stages[stage]))
	g.emit(m)
}

// advance takes the customer's next funnel step, or drops them.
func (g *gen) advance(i int) {
	c := &g.cust[i]
	r := g.r
	s := int(c.stage)
	p := advanceP[min(s, 3)]
	if s == stOpportunity {
		p = winP[c.segment]
	}
	won := r.Float64() < min(p*float64(c.quality), 0.95)
	c.nextStage = -1
	if s == stOpportunity {
		if c.segment != segSMB {
			g.closeOpportunity(i, won)
		}
		if won {
			c.stage = stCustomer
			g.stage(i, stCustomer, g.at(1, 120))
			g.becomeCustomer(i)
		} else if r.Float64() < 0.6 {
			c.stage = stDisqualified
			g.stage(i, stDisqualified, g.at(1, 120))
		}
		return
	}
	if !won {
		// Half the drop-outs are disqualified by sales; the rest go quiet.
		if r.Float64() < 0.5 {
			c.stage = stDisqualified
			g.stage(i, stDisqualified, g.at(60, 7200))
		}
		return
	}
	c.stage++
	g.stage(i, int(c.stage), g.at(60, 7200))
	span := stepDays[c.stage]
	if c.stage == stOpportunity {
		c.oppID = g.nextID(&g.nOpp)
		span = closeDays[c.segment]
	}
	c.nextStage = int32(g.d + span[0] + r.IntN(span[1]-span[0]+1))
}

// closeOpportunity emits the won or lost B2B deal; a won deal fixes the MRR.
func (g *gen) closeOpportunity(i int, won bool) {
	c := &g.cust[i]
	r := g.r
	acv := 6000 + 12000*r.ExpFloat64()
	if c.segment == segEnterprise {
		acv = 40000 + 60000*r.ExpFloat64()
	}
	cur := &g.cur.list[c.cur]
	whole := math.Max(1, math.Round(acv/cur.rate/100)) * 100 // deals are round numbers
	m := &g.m
	m.reset(events.TypeOpportunityClosed, g.at(60, 3600), "salesforce")
	m.ident.crm = g.crm(i)
	m.add("opportunity_id", hexID("opp_", c.oppID))
	outcome := "lost"
	if won {
		outcome = "won"
		c.mrrCents = int64(math.Round(whole / 12 * 100))
	}
	m.add("outcome", str(outcome))
	m.add("amount", cents(int64(whole)*100))
	m.add("currency", str(cur.code))
	g.emit(m)
}

// becomeCustomer starts what a new customer does: a subscription, a first
// order, and the clocks for repeat orders and churn.
func (g *gen) becomeCustomer(i int) {
	c := &g.cust[i]
	r := g.r
	sub := c.segment != segSMB || r.Float64() < 0.4
	if sub {
		if c.segment == segSMB {
			p := plans[r.IntN(len(plans))]
			c.mrrCents, _ = g.money(c, p.mrr)
		}
		c.subID = g.nextID(&g.nSub)
		m := &g.m
		m.reset(events.TypeSubscriptionStarted, g.at(30, 900), g.crmSource(c))
		m.ident.crm = g.crm(i)
		m.add("subscription_id", hexID("sub_", c.subID))
		m.add("mrr", cents(c.mrrCents))
		m.add("currency", str(g.cur.list[c.cur].code))
		g.emit(m)
		c.cancelDay = int32(g.d + 1 + int(r.ExpFloat64()/churnHazard[c.segment]))
	}
	if c.segment == segSMB || r.Float64() < 0.3 {
		g.order(i, true)
	} else {
		c.nextOrder = int32(g.d + 1 + int(r.ExpFloat64()*orderGap[c.segment]))
	}
}

// order emits an order.placed and schedules a refund of it, the next
// order, or the end of ordering.
func (g *gen) order(i int, first bool) {
	c := &g.cust[i]
	r := g.r
	var price float64
	switch c.segment {
	case segSMB:
		price = math.Min(20+70*r.ExpFloat64(), 2500)
	case segMid:
		price = 400 + 1800*r.ExpFloat64()
	default:
		price = 1500 + 6000*r.ExpFloat64()
	}
	amount, code := g.money(c, price)
	ch := weighted(r, orderChannelW[c.segment])
	orderID := g.nextID(&g.nOrd)
	m := &g.m
	m.reset(events.TypeOrderPlaced, g.at(30, 1800), orderSources[ch])
	if ch <= 1 && r.Float64() < 0.3 {
		m.off = g.localOffset(c)
	}
	m.ident.crm = g.crm(i)
	if r.Float64() < 0.5 {
		m.ident.email = email(i, emailLower)
	}
	m.add("order_id", hexID("ord_", orderID))
	m.add("amount", cents(amount))
	m.add("currency", str(code))
	m.add("channel", str(events.OrderChannels[ch]))
	m.add("items", num(int64(1+r.IntN(5))))
	if first {
		m.add("first_order", raw("true"))
	}
	g.emit(m)

	if c.refundDay < 0 && r.Float64() < 0.06 {
		c.refundDay = int32(g.d + 1 + r.IntN(21))
		c.refundOrder = orderID
		c.refundCents = amount
		if r.Float64() < 0.4 { // partial refund
			c.refundCents = max(1, int64(float64(amount)*(0.1+0.8*r.Float64())))
		}
	}
	if !first && r.Float64() < 0.2 {
		c.flags |= fLapsed
	}
	c.nextOrder = -1
	if c.flags&fLapsed == 0 {
		c.nextOrder = int32(g.d + 1 + int(r.ExpFloat64()*orderGap[c.segment]))
	}
}

func (g *gen) refund(i int) {
	c := &g.cust[i]
	r := g.r
	m := &g.m
	m.reset(events.TypeOrderRefunded, g.at(60, 3600), "shopify")
	m.ident.crm = g.crm(i)
	m.add("order_id", hexID("ord_", c.refundOrder))
	m.add("amount", cents(c.refundCents))
	m.add("currency", str(g.cur.list[c.cur].code))
	m.add("reason", str(refundWhy[r.IntN(len(refundWhy))]))
	g.emit(m)
	c.refundDay = -1
}

func (g *gen) cancel(i int) {
	c := &g.cust[i]
	r := g.r
	m := &g.m
	m.reset(events.TypeSubscriptionCancel, g.at(60, 3600), g.crmSource(c))
	m.ident.crm = g.crm(i)
	m.add("subscription_id", hexID("sub_", c.subID))
	m.add("reason", str(cancelWhy[r.IntN(len(cancelWhy))]))
	g.emit(m)
	c.cancelDay = -1
}

// emails sends the newsletter (Tuesdays) and, to open leads, a nurture
// email every fifth day; people open and click some of them.
func (g *gen) emails(i int) {
	c := &g.cust[i]
	d := int32(g.d)
	if d <= c.formDay {
		return
	}
	wd := g.weekday(g.d)
	newsletter := wd == 2
	nurture := c.stage < stCustomer && (d-c.formDay)%5 == 1
	if !newsletter && !nurture {
		return
	}
	camps := g.emailCampaigns(g.d)
	camp := -1
	if len(camps) > 0 {
		k := g.d / 7
		if !newsletter {
			k++
		}
		camp = int(camps[k%len(camps)])
	}
	src := "hubspot"
	if camp >= 0 {
		src = g.camps[camp].source
	}
	r := g.r
	m := &g.m
	msgID := hexID("msg_", mix(g.msgKey+uint64(g.d)<<20+uint64(camp+1)))
	send := func(typ events.Type, at int64) {
		m.reset(typ, at, src)
		m.ident.email = email(i, emailLower)
		if src == "hubspot" {
			m.ident.crm = g.crm(i)
		}
		m.camp = camp
		m.add("message_id", msgID)
		if typ == events.TypeEmailClicked {
			m.add("url", str(pageURLs[r.IntN(len(pageURLs))]))
		}
		g.emit(m)
	}
	send(events.TypeEmailSent, g.at(60, 600))
	if camp >= 0 {
		g.camps[camp].sends++
	}
	if r.Float32() < c.openP {
		send(events.TypeEmailOpened, g.at(300, 6*3600))
		if r.Float32() < c.clickP {
			send(events.TypeEmailClicked, g.at(5, 600))
			if camp >= 0 {
				g.camps[camp].clicks++
			}
			g.visit(i, camp, false)
		}
	}
	if r.Float64() < 0.002 {
		c.flags |= fUnsubscribed
	}
}

// martechCosts emits one martech.cost per vendor for the month that starts
// on the current day (or that the first simulated day falls in).
func (g *gen) martechCosts() {
	m := &g.m
	for k := range g.vendors {
		v := &g.vendors[k]
		// Priced for a 10,000-contact plan, scaled to the simulated company
		// so that martech stays near the 3 % of revenue of a typical one.
		amount := (v.base + v.perCust*10000) * float64(g.cfg.Customers) / 60000
		if v.perCust > 0 {
			amount *= 0.95 + 0.1*g.r.Float64() // usage-based part varies
		}
		m.reset(events.TypeMartechCost, g.dayStart+6*3600+int64(k)*60, "netsuite")
		// Contract v1 requires an identity on every event; costs belong to
		// no person, so system events name their producer as a
		// pseudo-anonymous id "system:<source>" that identity resolution
		// must ignore.
		m.ident.anon = str("system:netsuite")
		m.add("vendor", str(v.name))
		m.add("month", val{kind: vMonth, n: g.startDay + int64(g.d)})
		m.add("amount", cents(int64(math.Round(amount*100))))
		m.add("currency", str(v.currency))
		g.emit(m)
	}
}

// dailyStats emits campaign.daily_stats for every campaign running today,
// consistent with what the customers did: clicks are at least the tracked
// visits (email: the tracked clicks), impressions follow the channel's CTR.
func (g *gen) dailyStats() {
	r := g.r
	m := &g.m
	n := int64(len(g.camps))
	perDay := float64(g.cfg.Customers) / float64(g.cfg.Days)
	for k := range g.camps {
		c := &g.camps[k]
		if !c.active(g.d) {
			continue
		}
		var impressions, clicks int64
		var cost float64
		switch c.ch {
		case &channels[chEmail]:
			impressions, clicks = int64(c.sends), int64(c.clicks)
			cost = float64(c.sends) * c.cpc
		case &channels[chEvents]:
			clicks = int64(c.visits + 20 + r.IntN(280))
			impressions = clicks * int64(20+r.IntN(30)) // booth visitors per badge scan
			cost = c.eventCost * (0.8 + 0.4*r.Float64())
		default:
			base := c.ch.weight * math.Max(1, perDay/200)
			clicks = int64(math.Round(float64(c.visits)*(3+5*r.Float64()))) + int64(r.IntN(1+int(base)))
			clicks = max(clicks, int64(c.visits))
			impressions = int64(math.Round(float64(clicks) / (c.ctr * (0.85 + 0.3*r.Float64()))))
			cost = float64(clicks) * c.cpc * (0.85 + 0.3*r.Float64())
		}
		impressions = max(impressions, clicks)
		m.reset(events.TypeCampaignDailyStats, g.dayStart+86400-600+int64(k)*600/n, c.source)
		m.ident.anon = str(c.sysIdentity) // see martechCosts
		m.camp = k
		m.add("date", val{kind: vDate, n: g.startDay + int64(g.d)})
		m.add("impressions", num(impressions))
		m.add("clicks", num(clicks))
		m.add("cost", cents(int64(math.Round(cost/c.rate*100))))
		m.add("currency", str(c.currency))
		g.emit(m)
	}
}
