"""Events between the services: their contract (envelope, types, topics), the outbox that publishes them and
the inbox consumer that takes each one into effect exactly once."""
