"""The operator's tools on top of the services: the ``loyalty`` command, ``apply``/``import``/``demo`` over the
public API, dead letters, rebuilds and the jobs commands. May import ``services`` and ``shared``; nothing below
imports it."""
