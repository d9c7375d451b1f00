"""The operations of orderhooks, written once.

The API (`web/`), the dashboard (`web/dashboard/`), the command line (`cli/`) and the
process runner call these functions and nothing else to change state: none of them
builds a webhook, a key, an audit entry or a charge itself. Each function takes a
`ServiceContext` (store, settings, clock) and, when it changes something a person asked
for, the `Actor` the audit trail names.

Callers keep what is theirs: reading and validating their input (JSON bodies, forms,
flags), authorizing the caller, and shaping the answer (JSON, HTML, text).

    context.py      ServiceContext: what every operation needs
    audit.py        Actor and the one way an audit entry is built (the store writes it
                    in the transaction of the change it records)
    ingest.py       validated items -> Store.ingest -> results (API and broker sources)
    webhooks.py     create, patch, delete, enable/disable, rotate the secret
    deliveries.py   send a test event, retry now, recover failed, replay stored events
    keys.py         create and revoke API keys, the admin key of a first start
    agreements.py   record an account's agreement
    usage.py        usage priced by agreement: the one definition of a charge
    testevents.py   the synthetic events of a test delivery
    portal.py       make a one-time portal link into the dashboard, and open it once
    orders.py       erase an order's personal data
"""
