"""Use cases of the points service, one transaction each (the caller commits; these only flush), a module for
each thing they are about:

- ``program``      the program's settings
- ``members``      enrolment and profile, and the member every use case that moves points starts from
- ``balances``     a member's balance and ledger pages, read outside a transaction
- ``purchases``    purchases (their fast path) and refunds
- ``earning``      what a basket earns, for a purchase and a quote alike
- ``checkout``     quotes, holds, their captures and voids, the hold a purchase's ``points_paid`` names
- ``holds``        how a hold ends (spent, or given back to its lots), also when its time is up
- ``operators``    adjustments and transfers made by hand
- ``redemptions``  paying and giving back the points of rewards' redemptions
- ``projections``  what points keeps of other services' state (a member's tier)
- ``ledger``       how a balance moves: entries, lots, pending release, expiry
- ``reminders``    ``points.expiring`` about each lot, some days before it expires
- ``rules``        earning rules stored and turned into domain rules
- ``simulation``   rule changes replayed on the purchases of a range, nothing written

Every use case that moves points locks the member row first, then settles it (pending points that matured,
lots that expired), so what it decides on is the balance as of now. The outbox and the idempotency keys that
they all write through are here.
"""

from __future__ import annotations

from services.points.models import audit, idempotency, outbox
from shared.audit import AuditTrail
from shared.http.idempotency import IdempotencyKeys
from shared.messaging.outbox import Outbox

SOURCE = "points"
OUTBOX = Outbox(outbox, SOURCE)
IDEMPOTENCY = IdempotencyKeys(idempotency)
AUDIT = AuditTrail(audit)
