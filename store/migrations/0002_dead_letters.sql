-- Messages that can never succeed, one row per Kafka message (topic, partition,
-- offset); the payload is truncated. Replay them from the <topic>.dlq topic.
CREATE TABLE IF NOT EXISTS dead_letters (
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
) ENGINE = ReplacingMergeTree(failed_at)
PARTITION BY toYYYYMM(failed_at)
ORDER BY (topic, `partition`, `offset`);
