"""JSON with Decimal amounts written as exact numbers, never through a float."""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


def dumps(value: Any) -> str:
    decimals: list[Decimal] = []

    def swap(node: Any) -> Any:
        if isinstance(node, Decimal):
            if not node.is_finite():
                raise ValueError(f"not a finite amount: {node}")
            decimals.append(node)
            return f"\x00dec{len(decimals) - 1}\x00"
        if isinstance(node, dict):
            return {k: swap(v) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return [swap(v) for v in node]
        return node

    text = json.dumps(swap(value))
    for i, amount in enumerate(decimals):
        text = text.replace(f'"\\u0000dec{i}\\u0000"', format(amount, "f"), 1)
    return text
