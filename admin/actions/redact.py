"""A last guard before anything reaches a person: every secret value from the settings is
replaced by `***` in text, in nested data, and in the settings shown by `GET /v1/config`.

The first guard is never putting secrets into messages at all; this one catches a driver
error that quotes a connection string, or a password that turns up in a dead letter.
"""
from __future__ import annotations

import re
from typing import Any, Iterable

from pydantic import BaseModel, SecretStr

from vb2po.settings import Settings

MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words; such a secret is no secret anyway
_ODBC_SECRET_KEYS = {"pwd", "password"}
_TOKEN = re.compile(r"vb2po_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")


def _odbc_secrets(connection_string: str) -> list[str]:
    found = []
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() in _ODBC_SECRET_KEYS and value.strip():
            found.append(value.strip().strip("{}"))
    return found


def secret_values(model: BaseModel) -> list[str]:
    """Every SecretStr in the settings, plus the password inside each ODBC string."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            raw = value.get_secret_value()
            found.append(raw)
            found.extend(_odbc_secrets(raw))
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk(model)
    return found


class Redactor:
    def __init__(self, secrets: Iterable[str]):
        unique = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        self._secrets = sorted(unique, key=len, reverse=True)  # longest first: a string before its password

    @classmethod
    def from_settings(cls, settings: Settings) -> "Redactor":
        return cls(secret_values(settings))

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return _TOKEN.sub("vb2po_" + MASK, value)

    def data(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.data(k) if isinstance(k, str) else k: self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        return value


def settings_for_display(settings: Settings) -> dict:
    """The settings as a person may see them: every secret masked, the rest as configured."""
    data = settings.model_dump(mode="json")  # SecretStr dumps as "**********"

    def mask(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: mask(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mask(v) for v in value]
        if isinstance(value, str) and value and set(value) == {"*"}:
            return MASK
        return value

    return Redactor.from_settings(settings).data(mask(data))
