"""The admin HTTP API: personal tokens, groups and permissions, audit, and the operator routes."""
