"""The library the services run on: the event contract, outbox and inbox, the database layer, settings,
auth, errors and HTTP plumbing. It holds no business rules and imports nothing from ``services`` or ``ops``
(``tests/test_layers.py`` checks it)."""
