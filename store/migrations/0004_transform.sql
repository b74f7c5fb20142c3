-- One view of the customer: every identity key (crm:<id>, email:<hmac>,
-- anon:<id>) mapped to its canonical customer id. Latest row per identifier wins.
CREATE TABLE IF NOT EXISTS identity_map (
    identifier  String,
    customer_id String,
    updated_at  DateTime('UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY identifier;

-- Customer 360, one row per canonical customer (query with FINAL and
-- merged_into = ''). A customer merged into another keeps a tombstone row
-- whose merged_into names the survivor. "Never" times are 2100-01-01.
CREATE TABLE IF NOT EXISTS customers (
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
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY customer_id;

-- KPI history: one row per series per evaluation. dimension is '' for the
-- total; a group with a zero denominator has no row (no value, not 0).
CREATE TABLE IF NOT EXISTS kpi_values (
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
) ENGINE = MergeTree
PARTITION BY toYYYYMM(computed_at)
ORDER BY (kpi, computed_at, dimension, dimension_value);

-- One row per KPI evaluation, successful or not: what the exporter reads for
-- freshness and errors when it runs without the transform role.
CREATE TABLE IF NOT EXISTS kpi_runs (
    kpi         String,
    computed_at DateTime('UTC'),
    duration_ms UInt32,
    ok          UInt8,
    error       String,
    series      UInt32,
    dropped     UInt32
) ENGINE = MergeTree
PARTITION BY toYYYYMM(computed_at)
ORDER BY (kpi, computed_at);

-- Small key/value state of the transform role (identity watermark).
CREATE TABLE IF NOT EXISTS transform_state (
    key        String,
    value      String,
    updated_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY key;
