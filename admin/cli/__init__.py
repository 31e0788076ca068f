"""The `vb2po` operator commands: an HTTP client of the admin API and the rendering of its answers."""
