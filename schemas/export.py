"""The JSON Schema of each event type, as versioned files in schemas/jsonschema/.

`python -m schemas.export` writes them; a test fails when a model change breaks what the
committed files promise, or when the files are stale.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from schemas.events import CREDIT_BLOCK_EVENT, PAYMENT_EVENT, SCHEMA_VERSION, CreditBlockEvent, PaymentEvent

SCHEMA_DIR = Path(__file__).parent / "jsonschema"
MODELS = {PAYMENT_EVENT: PaymentEvent, CREDIT_BLOCK_EVENT: CreditBlockEvent}


def schema_file(event_type: str, version: int) -> Path:
    return SCHEMA_DIR / f"{event_type}.v{version}.json"


def current_schemas() -> dict[Path, dict]:
    out = {}
    for event_type, model in MODELS.items():
        out[schema_file(event_type, SCHEMA_VERSION)] = model.model_json_schema(mode="serialization")
    return out


def render(schema: dict) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> int:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for path, schema in current_schemas().items():
        path.write_text(render(schema))
        print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
