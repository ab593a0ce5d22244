"""Business logic, a module per area: plain functions taking a session and keyword-only arguments."""
