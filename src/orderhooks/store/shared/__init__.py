"""The store's operations and what they stand on, written once for both engines.

`tx` is the seam to an engine, `core` runs an operation in one of its transactions,
and each concern's module (ingest, reads, webhooks, manual, claim, record, admin) holds
its operations as methods of one part of `orderhooks.store.Store`. Only the SQL (in
`store/sql/`) and the transaction machinery differ between the engines.
"""
