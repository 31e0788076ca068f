"""Visma Business over ODBC: table shapes, SQL dialects, checked identifiers, connections."""
