"""Use cases of the tiers service, one transaction each (the caller commits; these only flush), a module for
each thing they are about:

- ``program``       the tier program as every use case reads it, and its replacement
- ``evaluation``    settling locked members against the program: new members placed, changes recorded
- ``members``       enrolment, a member's tier and history, the hourly evaluation of ended retentions
- ``purchases``     purchase and refund facts; a batch of purchases replayed in memory, written in bulk
- ``points``        ``points.*`` events: balances, points per week, the points of purchases
- ``segmentation``  the segmentation run, a member's segment, lifecycles moved by purchases, analytics
- ``projections``   the dashboard's other projection (redemptions) and what the dashboard shows
- ``formats``       figures as the answers and events write them

A member's tier is evaluated (``domain.tiers.evaluate``) after each purchase fact, for every member when
the program changes, and by the hourly ``evaluate_all`` for members whose retention has ended. Segments
(``domain.segments.segment_all``) are computed for everyone by ``recompute_segments``, every 15 minutes; a
purchase or refund moves its member's lifecycle at once.

Locks are always taken in one order: the program row first (shared by evaluations, exclusive for a program
change), then member rows in member_id order. So an evaluation never applies a ladder that a committed
change replaced, a member enrolled during a change is evaluated against the new ladder, and nothing
deadlocks. The segmentation run locks its run row and then every segment row, and takes no other lock; a
purchase locks its member's segment row last, after the program and member rows.

The outbox that every announcement goes through is here.
"""

from __future__ import annotations

from services.tiers.models import audit, outbox
from shared.audit import AuditTrail
from shared.messaging.outbox import Outbox

SOURCE = "tiers"
OUTBOX = Outbox(outbox, SOURCE)
AUDIT = AuditTrail(audit)
BATCH_SIZE = 500  # members settled together when many are (a program change, the hourly evaluation)
