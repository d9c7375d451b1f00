"""The pure domain: orders, statuses, events, webhooks, routing and triggers. No I/O, no clock."""
