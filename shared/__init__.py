"""What the three services share: events, outbox and inbox, database, settings, auth, errors, health."""
