"""Stripe revenue sync: verified webhooks, object snapshots, customer mapping, exactly-once
booking into the revenue ledger, backfill, reconciliation and verification.

The flow: a webhook (or the backfill) yields Stripe objects → `snapshots` keeps the newest state
of each → `booking` derives what each object is worth (`amounts`), attributes it to an app
customer (`attribution`) and replaces the object's revenue entries in the ledger.
"""
