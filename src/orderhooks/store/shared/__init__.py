"""The engine-neutral half of the store: every decision, written once over `Tx`.

Both engines run these functions inside their own transactions; only the SQL (in
`store/sql/<engine>/`) and the transaction machinery differ between them.
"""
