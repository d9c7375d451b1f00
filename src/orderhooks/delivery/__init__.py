"""Delivery: signing, retry policy (pure), the HTTP transport, the network guard and the dispatcher."""
