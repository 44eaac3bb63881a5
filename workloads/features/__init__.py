"""The data layer: feature definitions, the stream materializer (Kafka -> Redis), the Parquet offline store,
backfill and point-in-time training sets. See the README's data-layer section."""
