"""Passwords, tokens, secret encryption, rate limits and permissions."""
