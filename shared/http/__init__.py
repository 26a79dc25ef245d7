"""What every service's HTTP side runs on: API keys and scopes, problem+json errors, the OpenAPI docs, client
ids of writes, request limits, health, pagination and the API's value types."""
