"""Repositories: the only code that runs SQL; each domain's scope rule lives in its module."""
