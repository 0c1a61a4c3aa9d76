"""HTTP glue: dependencies, middleware, error handlers, problem documents, idempotency, auditing, pagination."""
