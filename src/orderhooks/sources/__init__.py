"""Broker sources (docs/operations.md): order events taken from NATS JetStream and RabbitMQ.

`ORDERHOOKS_SOURCES` lists them (`config`); `orderhooks serve` and `orderhooks worker`
run one `SourceConsumer` per source (`consumer`), which gets messages from its broker
(`nats`, `amqp`), checks each exactly as `POST /v1/events` would (`messages`) and stores
them through the same ingest call, acknowledging only after the commit; `runtime`
starts and stops them. Nothing is imported here: `config` is read by
`orderhooks.config`, which the rest depends on.
"""
