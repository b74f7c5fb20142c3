-- 0001_events.sql
CREATE TABLE IF NOT EXISTS kpibridge.events_local ON CLUSTER kpibridge (
    event_id        String,
    type            String,
    occurred_at     DateTime('UTC'),
    source          String,
    crm_contact_id  String,
    anonymous_id    String,
    email_hash      String,
    campaign_id     String,
    channel         String,
    amount          Float64,
    amount_original Float64,
    currency        String,
    entity_id       String,
    stage           String,
    outcome         String,
    order_channel   String,
    platform        String,
    segment         String,
    country         String,
    vendor          String,
    url             String,
    referrer        String,
    stat_date       Date,
    impressions     UInt64,
    clicks          UInt64,
    properties      String,
    topic           String,
    `partition`     Int32,
    `offset`        Int64,
    ingested_at     DateTime('UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/kpibridge/events_local', '{replica}', ingested_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (type, event_id);

CREATE TABLE IF NOT EXISTS kpibridge.events ON CLUSTER kpibridge AS kpibridge.events_local
ENGINE = Distributed(kpibridge, kpibridge, events_local, cityHash64(event_id));

-- 0002_dead_letters.sql
CREATE TABLE IF NOT EXISTS kpibridge.dead_letters_local ON CLUSTER kpibridge (
    reason        String,
    field         String,
    detail        String,
    topic         String,
    `partition`   Int32,
    `offset`      Int64,
    message_key   String,
    payload       String,
    payload_bytes UInt32,
    event_type    String,
    source        String,
    failed_at     DateTime('UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/kpibridge/dead_letters_local', '{replica}', failed_at)
PARTITION BY toYYYYMM(failed_at)
ORDER BY (topic, `partition`, `offset`);

CREATE TABLE IF NOT EXISTS kpibridge.dead_letters ON CLUSTER kpibridge AS kpibridge.dead_letters_local
ENGINE = Distributed(kpibridge, kpibridge, dead_letters_local, cityHash64(topic, `partition`, `offset`));

-- 0003_duplicates.sql
CREATE TABLE IF NOT EXISTS kpibridge.duplicates_local ON CLUSTER kpibridge (
    event_id    String,
    type        String,
    source      String,
    topic       String,
    `partition` Int32,
    `offset`    Int64,
    seen_at     DateTime('UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/kpibridge/duplicates_local', '{replica}', seen_at)
PARTITION BY toYYYYMM(seen_at)
ORDER BY (topic, `partition`, `offset`);

CREATE TABLE IF NOT EXISTS kpibridge.duplicates ON CLUSTER kpibridge AS kpibridge.duplicates_local
ENGINE = Distributed(kpibridge, kpibridge, duplicates_local, cityHash64(topic, `partition`, `offset`));

-- 0004_transform.sql
CREATE TABLE IF NOT EXISTS kpibridge.identity_map ON CLUSTER kpibridge (
    identifier  String,
    customer_id String,
    updated_at  DateTime('UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/kpibridge/identity_map', '{shard}_{replica}', updated_at)
ORDER BY identifier;

CREATE TABLE IF NOT EXISTS kpibridge.customers ON CLUSTER kpibridge (
    customer_id            String,
    crm_contact_id         String,
    acquisition_channel    String,
    acquisition_campaign   String,
    segment                String,
    country                String,
    stage                  String,
    orders                 UInt32,
    revenue                Float64,
    channels_count         UInt32,
    is_crm                 UInt8,
    churned                UInt8,
    first_seen             DateTime('UTC'),
    last_seen              DateTime('UTC'),
    first_order_at         DateTime('UTC'),
    last_order_at          DateTime('UTC'),
    reached_lead_at        DateTime('UTC'),
    reached_mql_at         DateTime('UTC'),
    reached_sql_at         DateTime('UTC'),
    reached_opportunity_at DateTime('UTC'),
    reached_customer_at    DateTime('UTC'),
    won_at                 DateTime('UTC'),
    subscribed_at          DateTime('UTC'),
    churned_at             DateTime('UTC'),
    channels               Array(String),
    campaigns              Array(String),
    order_channels         Array(String),
    merged_into            String,
    updated_at             DateTime('UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/kpibridge/customers', '{shard}_{replica}', updated_at)
ORDER BY customer_id;

CREATE TABLE IF NOT EXISTS kpibridge.kpi_values ON CLUSTER kpibridge (
    kpi             String,
    dimension       String,
    dimension_value String,
    value           Float64,
    numerator       Float64,
    denominator     Float64,
    window          String,
    window_start    DateTime('UTC'),
    window_end      DateTime('UTC'),
    computed_at     DateTime('UTC')
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/kpibridge/kpi_values', '{shard}_{replica}')
PARTITION BY toYYYYMM(computed_at)
ORDER BY (kpi, computed_at, dimension, dimension_value);

CREATE TABLE IF NOT EXISTS kpibridge.kpi_runs ON CLUSTER kpibridge (
    kpi         String,
    computed_at DateTime('UTC'),
    duration_ms UInt32,
    ok          UInt8,
    error       String,
    series      UInt32,
    dropped     UInt32
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/kpibridge/kpi_runs', '{shard}_{replica}')
PARTITION BY toYYYYMM(computed_at)
ORDER BY (kpi, computed_at);

CREATE TABLE IF NOT EXISTS kpibridge.transform_state ON CLUSTER kpibridge (
    key        String,
    value      String,
    updated_at DateTime('UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/kpibridge/transform_state', '{shard}_{replica}', updated_at)
ORDER BY key;

-- 0005_resolved_events.sql
CREATE TABLE IF NOT EXISTS kpibridge.resolved_events ON CLUSTER kpibridge (
    event_id       String,
    type           String,
    occurred_at    DateTime('UTC'),
    source         String,
    channel        String,
    campaign_id    String,
    order_channel  String,
    platform       String,
    stage          String,
    outcome        String,
    segment        String,
    country        String,
    vendor         String,
    currency       String,
    entity_id      String,
    crm_contact_id String,
    email_hash     String,
    anonymous_id   String,
    topic          String,
    amount         Float64,
    impressions    UInt64,
    clicks         UInt64,
    ingested_at    DateTime('UTC'),
    identifier     String,
    customer       String,
    customer_key   UInt64 DEFAULT if(customer = '', 0, cityHash64(customer)),
    resolve_run    UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/kpibridge/resolved_events', '{shard}_{replica}', ingested_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (type, occurred_at, event_id);

CREATE TABLE IF NOT EXISTS kpibridge.customer_merges ON CLUSTER kpibridge (
    former       String,
    customer_id  String,
    updated_at   DateTime('UTC'),
    former_key   UInt64 DEFAULT cityHash64(former),
    customer_key UInt64 DEFAULT cityHash64(customer_id)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/kpibridge/customer_merges', '{shard}_{replica}', updated_at)
ORDER BY former;

ALTER TABLE kpibridge.customers ON CLUSTER kpibridge ADD COLUMN customer_key UInt64 DEFAULT cityHash64(customer_id);

CREATE TABLE IF NOT EXISTS kpibridge.resolve_staging ON CLUSTER kpibridge AS kpibridge.resolved_events
ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/kpibridge/resolve_staging', '{shard}_{replica}')
ORDER BY tuple();

-- 0006_attribution.sql
ALTER TABLE kpibridge.customers ON CLUSTER kpibridge ADD COLUMN acquisition_class String AFTER acquisition_campaign;

ALTER TABLE kpibridge.customers ON CLUSTER kpibridge ADD COLUMN lead_channel String AFTER acquisition_class;

ALTER TABLE kpibridge.customers ON CLUSTER kpibridge ADD COLUMN lead_campaign String AFTER lead_channel;

ALTER TABLE kpibridge.customers ON CLUSTER kpibridge ADD COLUMN lead_class String AFTER lead_campaign;

ALTER TABLE kpibridge.resolved_events ON CLUSTER kpibridge ADD COLUMN stat_date Date AFTER clicks;

ALTER TABLE kpibridge.resolve_staging ON CLUSTER kpibridge ADD COLUMN stat_date Date AFTER clicks;

ALTER TABLE kpibridge.resolved_events ON CLUSTER kpibridge DELETE WHERE type IN ('campaign.daily_stats', 'martech.cost');

-- 0007_kpi_baselines.sql
CREATE TABLE IF NOT EXISTS kpibridge.kpi_baselines ON CLUSTER kpibridge (
    kpi          String,
    value        Float64,
    at           Date,
    set_by       String,
    set_at       DateTime('UTC'),
    previous     Float64,
    had_previous UInt8,
    seq          UInt64 -- orders two baselines set in one second
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/kpibridge/kpi_baselines', '{shard}_{replica}')
ORDER BY (kpi, seq);

