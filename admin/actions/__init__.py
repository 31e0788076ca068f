"""Operator actions as plain functions: the admin API and the `vb2po` commands both call these."""
