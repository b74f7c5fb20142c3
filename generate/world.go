package generate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// channel describes how a marketing channel behaves. Costs are in the
// reporting currency.
type channel struct {
	name      string
	weight    float64 // share of acquisitions a campaign of this channel drives
	quality   float64 // multiplies funnel conversion of the people it brings
	ctr       [2]float64
	cpc       [2]float64 // cost per click; zero for unpaid channels
	sources   []string
	utmSource string
	utmMedium string
	referrers []string
	themes    []string
	alwaysOn  bool
}

// channels lists the channels of contract v1 in the order campaigns are
// first given to them, so that a small --campaigns still covers the
// channels that matter most.
var channels = []channel{
	{name: "paid_search", weight: 10, quality: 1.1, ctr: [2]float64{0.025, 0.05}, cpc: [2]float64{0.9, 2.6},
		sources: []string{"google_ads", "google_ads", "google_ads", "microsoft_ads"}, utmSource: "google", utmMedium: "cpc",
		referrers: []string{"https://www.google.com/", "https://www.google.de/", "https://www.bing.com/"},
		themes:    []string{"brand", "generic", "competitor", "product"}, alwaysOn: true},
	{name: "organic_search", weight: 8, quality: 1.05, ctr: [2]float64{0.015, 0.035},
		sources: []string{"google_search_console"}, utmSource: "google", utmMedium: "organic",
		referrers: []string{"https://www.google.com/", "https://duckduckgo.com/", "https://www.bing.com/", "https://www.ecosia.org/"},
		themes:    []string{"seo-blog", "seo-docs"}, alwaysOn: true},
	{name: "paid_social", weight: 7, quality: 0.8, ctr: [2]float64{0.008, 0.016}, cpc: [2]float64{0.5, 1.6},
		sources: []string{"meta_ads", "meta_ads", "linkedin_ads", "tiktok_ads"}, utmSource: "meta", utmMedium: "paid_social",
		referrers: []string{"https://www.facebook.com/", "https://www.instagram.com/", "https://www.linkedin.com/", "https://www.tiktok.com/"},
		themes:    []string{"prospecting", "retargeting", "lookalike", "video"}},
	{name: "email", weight: 1.5, quality: 1.0, ctr: [2]float64{0.02, 0.04}, cpc: [2]float64{0.01, 0.03},
		sources: []string{"mailchimp", "hubspot"}, utmSource: "newsletter", utmMedium: "email",
		themes: []string{"newsletter", "nurture", "promo", "product-update"}},
	{name: "direct", weight: 5, quality: 1.15, ctr: [2]float64{0.03, 0.05},
		sources: []string{"google_analytics"}, utmSource: "direct", utmMedium: "none",
		themes: []string{"brand-direct"}, alwaysOn: true},
	{name: "display", weight: 4, quality: 0.6, ctr: [2]float64{0.005, 0.009}, cpc: [2]float64{0.2, 0.8},
		sources: []string{"google_ads", "criteo"}, utmSource: "gdn", utmMedium: "display",
		referrers: []string{"https://www.spiegel.de/", "https://www.theguardian.com/", "https://news.example-publisher.com/"},
		themes:    []string{"awareness", "retargeting", "seasonal"}},
	{name: "referral", weight: 3, quality: 1.3, ctr: [2]float64{0.03, 0.05},
		sources: []string{"google_analytics"}, utmSource: "partner", utmMedium: "referral",
		referrers: []string{"https://www.g2.com/", "https://www.capterra.com/", "https://news.ycombinator.com/", "https://www.producthunt.com/"},
		themes:    []string{"reviews", "partners"}, alwaysOn: true},
	{name: "social", weight: 3, quality: 0.75, ctr: [2]float64{0.005, 0.015},
		sources: []string{"hootsuite"}, utmSource: "linkedin", utmMedium: "social",
		referrers: []string{"https://www.linkedin.com/", "https://t.co/", "https://www.reddit.com/", "https://mastodon.social/"},
		themes:    []string{"organic-social", "community"}},
	{name: "affiliate", weight: 3, quality: 0.85, ctr: [2]float64{0.01, 0.03}, cpc: [2]float64{1.5, 3.5},
		sources: []string{"awin", "impact"}, utmSource: "awin", utmMedium: "affiliate",
		referrers: []string{"https://www.techradar.example/", "https://www.bestsoftware.example/", "https://blog.partner.example/"},
		themes:    []string{"cashback", "reviews", "coupons"}, alwaysOn: true},
	{name: "events", weight: 6, quality: 1.25, ctr: [2]float64{0.02, 0.05},
		sources: []string{"eventbrite", "hubspot"}, utmSource: "event", utmMedium: "offline",
		themes: []string{"trade-fair", "webinar", "meetup", "conference"}},
}

const chEmail, chEvents = 3, 9

// campaign is one marketing campaign and its counters for the day being
// simulated.
type campaign struct {
	id, channel, source string
	ch                  *channel
	currency            string
	rate                float64 // campaign currency → reporting currency
	from, to            int     // active days, inclusive
	cpc, ctr            float64
	eventCost           float64 // events: cost per active day
	url                 string  // landing page with UTM parameters
	sysIdentity         string  // anonymous_id of the stats producer

	visits, sends, clicks int // today's tracked web visits, email sends and email clicks
}

func (c *campaign) active(d int) bool { return d >= c.from && d <= c.to }

// newCampaigns builds n campaigns over the channels.
func newCampaigns(r *rand.Rand, n, days int, cur *currencies) []campaign {
	camps := make([]campaign, n)
	var pick []float64
	for _, ch := range channels {
		pick = append(pick, ch.weight)
	}
	adAccounts := 0
	for i := range camps {
		ci := i
		if i >= len(channels) {
			ci = weighted(r, pick)
		}
		ch := &channels[ci]
		c := &camps[i]
		c.ch = ch
		c.channel = ch.name
		c.source = ch.sources[r.IntN(len(ch.sources))]
		c.id = fmt.Sprintf("%s-%s-%02d", ch.name, ch.themes[r.IntN(len(ch.themes))], i+1)
		c.sysIdentity = "system:" + c.source
		c.currency, c.rate = cur.reporting, 1
		switch c.source {
		case "google_ads", "meta_ads", "linkedin_ads", "microsoft_ads", "tiktok_ads":
			// US ad platforms: some accounts bill in dollars, a few in pounds.
			switch {
			case adAccounts%3 == 1:
				c.currency, c.rate = cur.prefer("USD")
			case adAccounts%5 == 3:
				c.currency, c.rate = cur.prefer("GBP")
			}
			adAccounts++
		}
		c.from, c.to = 0, days-1
		switch {
		case ci == chEvents:
			// A trade fair or conference: a few expensive days.
			span := min(days, 2+r.IntN(3))
			c.from = r.IntN(days - span + 1)
			c.to = c.from + span - 1
		case !ch.alwaysOn && i > 0 && r.Float64() < 0.4 && days >= 14:
			span := max(7, int(float64(days)*(0.3+0.4*r.Float64())))
			c.from = r.IntN(days - span + 1)
			c.to = c.from + span - 1
		}
		c.ctr = ch.ctr[0] + (ch.ctr[1]-ch.ctr[0])*r.Float64()
		c.cpc = ch.cpc[0] + (ch.cpc[1]-ch.cpc[0])*r.Float64()
		if ci == chEvents {
			c.eventCost = 1500 + 4500*r.Float64()
		}
		c.url = fmt.Sprintf("%s%s?utm_source=%s&utm_medium=%s&utm_campaign=%s",
			site, landingPages[r.IntN(len(landingPages))], ch.utmSource, ch.utmMedium, c.id)
	}
	return camps
}

const site = "https://www.kpibridge-demo.example"

var landingPages = []string{"/", "/pricing", "/product", "/features", "/lp/free-trial", "/lp/demo", "/customers", "/blog/kpi-guide"}

var pages = []string{
	"/", "/pricing", "/product", "/features", "/integrations", "/customers", "/blog",
	"/blog/marketing-kpis", "/blog/cac-explained", "/blog/roas-vs-roi", "/docs", "/docs/getting-started",
	"/about", "/careers", "/contact", "/account", "/account/billing", "/checkout", "/help",
}

// titles carry non-ASCII text on purpose: producers send UTF-8.
var titles = []string{"Preise & Pakete", "Übersicht", "Fonctionnalités", "Kundenstimmen", "Blog — KPIs", "Home"}

// vendor is a martech tool billed monthly.
type vendor struct {
	name     string
	base     float64 // monthly, in the vendor's billing currency
	perCust  float64 // extra per simulated customer (contact-based pricing)
	currency string
}

func newVendors(cur *currencies) []vendor {
	vs := []vendor{
		{name: "hubspot", base: 800, perCust: 0.04},
		{name: "salesforce", base: 1650},
		{name: "segment", base: 120, perCust: 0.01},
		{name: "mailchimp", base: 100, perCust: 0.015},
		{name: "looker", base: 3000},
		{name: "hotjar", base: 99},
		{name: "semrush", base: 250},
		{name: "hootsuite", base: 249},
	}
	for i := range vs {
		vs[i].currency = cur.reporting
		if vs[i].name != "hotjar" { // hotjar bills in euros, the US tools in dollars
			vs[i].currency, _ = cur.prefer("USD")
		}
	}
	return vs
}

// currency is one currency customers pay in.
type currency struct {
	code      string
	rate      float64 // → reporting currency
	weight    float64
	countries []string
	cw        []float64
}

// currencies is the currency mix of customers.
type currencies struct {
	reporting string
	rates     map[string]float64
	list      []currency
	weights   []float64
}

// countriesOf names the countries whose customers pay in a currency.
var countriesOf = map[string]struct {
	countries []string
	weights   []float64
}{
	"EUR": {[]string{"DE", "FR", "NL", "ES", "IT", "AT", "BE", "IE", "FI", "PT"}, []float64{30, 20, 12, 10, 10, 6, 5, 3, 2, 2}},
	"USD": {[]string{"US"}, []float64{1}},
	"GBP": {[]string{"GB"}, []float64{1}},
	"CHF": {[]string{"CH"}, []float64{1}},
	"SEK": {[]string{"SE"}, []float64{1}},
	"NOK": {[]string{"NO"}, []float64{1}},
	"DKK": {[]string{"DK"}, []float64{1}},
	"PLN": {[]string{"PL"}, []float64{1}},
	"CZK": {[]string{"CZ"}, []float64{1}},
	"CAD": {[]string{"CA"}, []float64{1}},
	"AUD": {[]string{"AU"}, []float64{1}},
	"JPY": {[]string{"JP"}, []float64{1}},
}

// defaultWeights is the default customer share of well-known currencies;
// the reporting currency gets 70 and any other configured currency 2.
var defaultWeights = map[string]float64{"USD": 12, "GBP": 8, "CHF": 4, "SEK": 3}

func newCurrencies(cfg *Config) *currencies {
	c := &currencies{reporting: cfg.ReportingCurrency, rates: map[string]float64{}}
	for code, r := range cfg.Rates {
		c.rates[code] = r
	}
	c.rates[cfg.ReportingCurrency] = 1
	mix := cfg.CurrencyMix
	if len(mix) == 0 {
		mix = append(mix, CurrencyShare{cfg.ReportingCurrency, 70})
		for _, code := range sortedKeys(cfg.Rates) {
			if code == cfg.ReportingCurrency {
				continue
			}
			w, ok := defaultWeights[code]
			if !ok {
				w = 2
			}
			mix = append(mix, CurrencyShare{code, w})
		}
	}
	for _, s := range mix {
		cur := currency{code: s.Code, rate: c.rates[s.Code], weight: s.Weight}
		if cc, ok := countriesOf[s.Code]; ok {
			cur.countries, cur.cw = cc.countries, cc.weights
		}
		c.list = append(c.list, cur)
		c.weights = append(c.weights, s.Weight)
	}
	return c
}

// prefer returns code and its rate when the deployment knows it, else the
// reporting currency.
func (c *currencies) prefer(code string) (string, float64) {
	if r, ok := c.rates[code]; ok {
		return code, r
	}
	return c.reporting, 1
}

// unknown returns currency codes the deployment does not know, for
// unknown_currency dead letters.
func (c *currencies) unknown() []string {
	var out []string
	for _, code := range []string{"JPY", "AUD", "BTC", "CAD", "NOK", "PLN", "XXX", "CNY", "BRL", "INR"} {
		if _, ok := c.rates[code]; !ok {
			out = append(out, code)
		}
	}
	for a := 'A'; len(out) == 0; a++ { // only when every code above is configured
		if code := "Q" + string(a) + "Q"; c.rates[code] == 0 {
			out = append(out, code)
		}
	}
	return out
}

// UTC offsets in seconds of a country's time zone: standard and summer time.
var zones = map[string][2]int32{
	"DE": {3600, 7200}, "FR": {3600, 7200}, "NL": {3600, 7200}, "ES": {3600, 7200}, "IT": {3600, 7200},
	"AT": {3600, 7200}, "BE": {3600, 7200}, "IE": {0, 3600}, "FI": {7200, 10800}, "PT": {0, 3600},
	"US": {-18000, -14400}, "GB": {0, 3600}, "CH": {3600, 7200}, "SE": {3600, 7200}, "NO": {3600, 7200},
	"DK": {3600, 7200}, "PL": {3600, 7200}, "CZ": {3600, 7200}, "CA": {-18000, -14400},
	"AU": {39600, 36000}, "JP": {32400, 32400},
}

// countryTable interns country codes so that customers hold a byte.
type countryTable struct {
	codes []string
	zones [][2]int32
	index map[string]uint8
}

func (t *countryTable) id(code string) uint8 {
	if i, ok := t.index[code]; ok {
		return i
	}
	t.index[code] = uint8(len(t.codes))
	t.codes = append(t.codes, code)
	t.zones = append(t.zones, zones[code])
	return uint8(len(t.codes) - 1)
}

// Segments of contact.upserted.
const (
	segSMB = iota
	segMid
	segEnterprise
)

var segments = []string{"smb", "mid_market", "enterprise"}

// Funnel stages, indexes into events.Stages.
const (
	stNone         = -1
	stLead         = 0
	stMQL          = 1
	stSQL          = 2
	stOpportunity  = 3
	stCustomer     = 4
	stDisqualified = 5
)

// Customer flags.
const (
	fUnsubscribed = 1 << iota
	fLapsed       // stopped ordering
	fApp
	fIOS
)

// customer is the simulation state of one person. It is kept small: a run
// holds one per --customers.
type customer struct {
	arrival     int32 // day of the first visit
	formDay     int32 // day of the form that identifies them, -1 never
	nextStage   int32 // day of the next funnel step, -1 none
	nextOrder   int32 // day of the next order, -1 none
	refundDay   int32 // day a refund of refundOrder is issued, -1 none
	cancelDay   int32 // day the subscription is cancelled, -1 none
	appFrom     int32 // first day of app use
	campaign    int16 // acquisition campaign, -1 for none
	stage       int8
	segment     uint8
	country     uint8
	cur         uint16 // index into currencies.list
	flags       uint8
	visitP      float32 // chance of a visit on a day, before decay
	openP       float32 // chance an email is opened
	clickP      float32 // chance an opened email is clicked
	quality     float32 // funnel conversion multiplier
	oppID       uint64
	subID       uint64
	refundOrder uint64
	refundCents int64
	mrrCents    int64 // B2B: MRR agreed in the won opportunity
}

// newCustomers draws every customer's fixed traits and arrival.
func (g *gen) newCustomers() {
	r := g.r
	days := g.cfg.Days
	// Arrivals grow over the window and dip at weekends.
	dayW := make([]float64, days)
	for d := range dayW {
		w := 1 + 0.3*float64(d)/float64(days)
		if wd := g.weekday(d); wd == 0 || wd == 6 {
			w *= 0.6
		}
		dayW[d] = w * (0.85 + 0.3*r.Float64())
	}
	dayCum := cumulative(dayW)
	segW := []float64{70, 22, 8}
	g.cust = make([]customer, g.cfg.Customers)
	for i := range g.cust {
		c := &g.cust[i]
		c.arrival = int32(pickCum(r, dayCum))
		c.segment = uint8(weighted(r, segW))
		c.cur = uint16(weighted(r, g.cur.weights))
		cur := &g.cur.list[c.cur]
		c.country = 0xff
		if len(cur.countries) > 0 {
			c.country = g.countries.id(cur.countries[weighted(r, cur.cw)])
		}
		c.campaign = -1
		q := 1.0
		if r.Float64() < 0.8 {
			if ci := g.pickCampaign(int(c.arrival), false); ci >= 0 {
				c.campaign = int16(ci)
				q = g.camps[ci].ch.quality
			}
		}
		c.quality = float32(q * (0.7 + 0.6*r.Float64()))
		c.formDay, c.nextStage, c.nextOrder, c.refundDay, c.cancelDay = -1, -1, -1, -1, -1
		c.stage = stNone
		pForm := 0.35 * q
		if c.segment != segSMB {
			pForm *= 1.2
		}
		if r.Float64() < pForm {
			c.formDay = c.arrival + int32(geometric(r, 0.3))
		}
		c.visitP = float32(0.04 + 0.26*r.Float64()*r.Float64())
		c.openP = float32(0.15 + 0.3*r.Float64())
		c.clickP = float32(0.06 + 0.14*r.Float64())
		pApp := 0.3
		if c.segment != segSMB {
			pApp = 0.1
		}
		if r.Float64() < pApp {
			c.flags |= fApp
			if r.Float64() < 0.55 {
				c.flags |= fIOS
			}
			c.appFrom = c.arrival + int32(r.IntN(21))
		}
	}
}

// pickCampaign picks a campaign running on day d, by acquisition weight,
// that brings visitors to the site (retarget: one that can bring them
// back), or returns -1 when none runs.
func (g *gen) pickCampaign(d int, retarget bool) int {
	act := g.activeOn(d, retarget)
	if len(act.idx) == 0 {
		return -1
	}
	return int(act.idx[pickCum(g.r, act.cum)])
}

type activeSet struct {
	idx []int32
	cum []float64
}

// activeOn returns the campaigns running on day d that bring visitors,
// memoised per day.
func (g *gen) activeOn(d int, retarget bool) *activeSet {
	sets := g.acq
	if retarget {
		sets = g.retarget
	}
	if sets[d] != nil {
		return sets[d]
	}
	s := &activeSet{}
	var w []float64
	for i := range g.camps {
		c := &g.camps[i]
		if !c.active(d) || c.ch.name == "email" || c.ch.name == "direct" && retarget {
			continue
		}
		s.idx = append(s.idx, int32(i))
		w = append(w, c.ch.weight)
	}
	s.cum = cumulative(w)
	sets[d] = s
	return s
}

// emailCampaigns returns the email campaigns running on day d.
func (g *gen) emailCampaigns(d int) []int32 {
	if g.emailCamps[d] == nil {
		s := []int32{}
		for i := range g.camps {
			if g.camps[i].ch == &channels[chEmail] && g.camps[i].active(d) {
				s = append(s, int32(i))
			}
		}
		g.emailCamps[d] = s
	}
	return g.emailCamps[d]
}

func cumulative(w []float64) []float64 {
	cum := make([]float64, len(w))
	t := 0.0
	for i, x := range w {
		t += x
		cum[i] = t
	}
	return cum
}

func pickCum(r *rand.Rand, cum []float64) int {
	x := r.Float64() * cum[len(cum)-1]
	return min(sort.SearchFloat64s(cum, x), len(cum)-1)
}

// weighted picks an index with probability proportional to its weight.
func weighted(r *rand.Rand, w []float64) int {
	t := 0.0
	for _, x := range w {
		t += x
	}
	x := r.Float64() * t
	for i, v := range w {
		if x < v {
			return i
		}
		x -= v
	}
	return len(w) - 1
}

// geometric returns the number of failures before the first success.
func geometric(r *rand.Rand, p float64) int {
	return int(math.Log(1-r.Float64()) / math.Log(1-p))
}

// hourTable maps a uniform byte to an hour of the day (UTC), weighted
// towards European business hours and evenings.
var hourTable = func() [256]uint8 {
	w := []float64{1, 0.6, 0.4, 0.3, 0.4, 0.8, 2, 4, 6, 7, 7.5, 7, 6.5, 6.5, 7, 7, 6.5, 6, 6, 6.5, 6, 4.5, 3, 1.8}
	cum := cumulative(w)
	var t [256]uint8
	for i := range t {
		x := (float64(i) + 0.5) / 256 * cum[len(cum)-1]
		t[i] = uint8(sort.SearchFloat64s(cum, x))
	}
	return t
}()

// Names for synthetic email addresses; the number that follows them makes
// each address unique.
var (
	firstNames = []string{"anna", "ben", "clara", "david", "emma", "felix", "greta", "hugo", "ines", "jonas",
		"karin", "lukas", "mia", "noah", "olivia", "paul", "quentin", "rosa", "sofia", "tom", "ute", "victor",
		"wiebke", "xavier", "yara", "zoe", "liam", "chloe", "mateo", "elena", "oscar", "nora"}
	lastNames = []string{"schmidt", "muller", "dubois", "rossi", "garcia", "smith", "jansen", "nilsson", "weber",
		"martin", "bianchi", "lopez", "brown", "visser", "berg", "fischer", "moreau", "ricci", "fernandez",
		"taylor", "dekker", "lindqvist", "wagner", "laurent", "romano", "santos", "wilson", "bakker"}
	mailDomains = []string{"example.com", "example.org", "example.net", "mail.example"}
	companies   = []string{"northwind", "contoso", "fabrikam", "initech", "globex", "umbrella", "acme", "hooli",
		"vandelay", "wonka", "stark", "tyrell", "cyberdyne", "soylent", "wayne", "oscorp"}
)

// appendEmail writes the email address of customer i. B2B customers use a
// company domain; the address is unique per customer.
func (g *gen) appendEmail(b []byte, i int, style uint8) []byte {
	h := mix(g.emailKey + uint64(i))
	first, last := firstNames[h%uint64(len(firstNames))], lastNames[(h>>8)%uint64(len(lastNames))]
	start := len(b)
	b = append(b, first...)
	b = append(b, '.')
	b = append(b, last...)
	b = appendUint(b, uint64(i))
	b = append(b, '@')
	if g.cust[i].segment == segSMB {
		b = append(b, mailDomains[(h>>16)%uint64(len(mailDomains))]...)
	} else {
		b = append(b, companies[(h>>16)%uint64(len(companies))]...)
		b = append(b, '-')
		b = appendUint(b, uint64(i%997))
		b = append(b, ".example"...)
	}
	if style == emailAsTyped && h>>24&3 == 0 {
		// People capitalise their names; hashing lower-cases them again.
		b[start] -= 'a' - 'A'
		b[start+len(first)+1] -= 'a' - 'A'
	}
	return b
}

func appendUint(b []byte, n uint64) []byte {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(b, buf[i:]...)
}

// mix is the splitmix64 finaliser: a bijection on uint64, so distinct
// inputs give distinct, random-looking ids.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
