"""Use cases of the rewards service, one transaction each (the caller commits; these only flush), a module by
what they are about:

- ``catalog``: rewards created, changed and read, the catalog with each reward's eligibility for a member;
- ``redemptions``: a redemption requested, cancelled and read;
- ``settlement``: points' answers confirming (with a voucher) or rejecting pending redemptions, and points
  asked again when its answer is overdue;
- ``goals``: a goal's catalog reward (``goal.reached``) given for free, confirmed with its voucher at once;
- ``vouchers``: a voucher checked and used at a till;
- ``members``: what rewards keeps of members, tiers and balances from the other services' events;
- ``saga``: what the steps of a redemption share (its events, the stock given back, the signals announcing
  a commit);
- ``waiting``: ``GET /v1/redemptions/{id}?wait=``, woken by those signals.

Locks, and why they never wait on each other in a cycle:

- A redemption request reads the reward's terms under a KEY SHARE lock, which other requests share and which
  only ``put_reward`` (FOR UPDATE) waits for; a per-member limit then locks the member's row; a limited stock
  is taken by one conditional UPDATE of the reward, the request's last statement, so the reward's exclusive
  lock is held only until the commit. Redemptions of one reward therefore run side by side.
- Settling a redemption (points' answer) locks member rows (their balance) and then the pending redemption
  rows; a rejection or a cancellation then gives units back to the reward by one conditional UPDATE.
- A goal's reward takes its unit by the same conditional UPDATE as a request, then writes its redemption and
  voucher; it locks no member row.
- Asking again for overdue redemptions locks only redemption rows and skips those already locked, so it never
  waits at all.
"""
