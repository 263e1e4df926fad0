"""Translator: turns scanned guest blocks into code-cache fragments (the only keystone user)."""
