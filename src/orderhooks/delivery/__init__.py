"""Delivery: signing and retry policy (pure), the transport, the network guard, the dispatcher."""
