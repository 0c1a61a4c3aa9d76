"""Demonstration and synthetic data: development tools, never used by the service itself."""
