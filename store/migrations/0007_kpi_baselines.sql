-- Baselines recorded with `kpibridge kpis baseline set`, kept as an audit
-- trail: who set which value when, and what it replaced. The latest row of
-- a KPI is its baseline (over the catalog's baseline).
CREATE TABLE IF NOT EXISTS kpi_baselines (
    kpi          String,
    value        Float64,
    at           Date,
    set_by       String,
    set_at       DateTime('UTC'),
    previous     Float64,
    had_previous UInt8,
    seq          UInt64 -- orders two baselines set in one second
) ENGINE = MergeTree
ORDER BY (kpi, seq);
