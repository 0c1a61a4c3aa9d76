"""Business rules; no HTTP types here."""
