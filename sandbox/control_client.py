"""A small Python handle on the /_sandbox control routes, for tests, the demo and benchmarks."""
from __future__ import annotations

from datetime import date
from typing import Any

import requests

from sandbox.faults import FaultSettings


class SandboxControl:
    def __init__(self, base_url: str, timeout_s: float = 10.0):
        self._url = base_url.rstrip("/") + "/_sandbox"
        self._timeout_s = timeout_s
        self._session = requests.Session()

    def _call(self, method: str, path: str, json: Any = None) -> Any:
        response = self._session.request(method, self._url + path, json=json, timeout=self._timeout_s)
        if response.status_code >= 400:
            raise RuntimeError(f"sandbox control {method} {path} failed: {response.status_code} {response.text}")
        return response.json()

    def health(self) -> bool:
        return bool(self._call("GET", "/health").get("ok"))

    def summary(self) -> dict[str, Any]:
        return self._call("GET", "/summary")

    def vouchers(self, client_key: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/clients/{client_key}/vouchers")

    def vouchers_with_reference(self, client_key: str, reference: str) -> list[dict[str, Any]]:
        return [v for v in self.vouchers(client_key) if v.get("ExternalImportReference") == reference]

    def set_faults(self, faults: FaultSettings | None = None, **fields: Any) -> dict[str, Any]:
        settings = faults or FaultSettings(**fields)
        return self._call("PUT", "/faults", json=settings.model_dump())

    def clear_faults(self) -> dict[str, Any]:
        return self._call("DELETE", "/faults")

    def set_rate_limit(self, per_second: int | None) -> dict[str, Any]:
        return self._call("PUT", "/settings", json={"rate_limit_per_second": per_second})

    def set_documented_fields_only(self, on: bool) -> dict[str, Any]:
        return self._call("PUT", "/settings", json={"documented_fields_only": on})

    def set_unique_references(self, on: bool) -> dict[str, Any]:
        return self._call("PUT", "/settings", json={"unique_references": on})

    def add_invoice(self, client_key: str, invoice_no: int, customer_no: int, total_amount: Any, *,
                    currency_code: str = "NOK", exchange_rate: Any = 1, is_reversed: bool = False) -> dict[str, Any]:
        body = {"invoice_no": invoice_no, "customer_no": customer_no, "total_amount": str(total_amount),
                "currency_code": currency_code, "exchange_rate": str(exchange_rate), "is_reversed": is_reversed}
        return self._call("POST", f"/clients/{client_key}/invoices", json=body)

    def reverse_invoice(self, client_key: str, invoice_no: int) -> dict[str, Any]:
        return self._call("POST", f"/clients/{client_key}/invoices/{invoice_no}/reverse")

    def set_token_lifetime(self, seconds: int) -> dict[str, Any]:
        return self._call("PUT", "/settings", json={"token_lifetime_seconds": seconds})

    def set_lock_date(self, client_key: str, lock_date: date | None) -> dict[str, Any]:
        value = lock_date.isoformat() if lock_date else None
        return self._call("POST", f"/clients/{client_key}/lock-date", json={"lock_date": value})

    def add_project(self, client_key: str, customer_no: int, name: str = "Nytt prosjekt",
                    deny_time_tracking: bool = False) -> dict[str, Any]:
        body = {"customer_no": customer_no, "name": name, "deny_time_tracking": deny_time_tracking}
        return self._call("POST", f"/clients/{client_key}/projects", json=body)

    def expire_tokens(self) -> int:
        return int(self._call("POST", "/tokens/expire")["expired"])

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/stats")

    def request_count(self, endpoint: str, status: int | str | None = None) -> int:
        """Requests seen for e.g. 'POST /OAuth/Token', optionally only with one status."""
        by_status = self.stats()["requests"].get(endpoint, {})
        return sum(n for s, n in by_status.items() if status is None or s == str(status))

    def reset_stats(self) -> dict[str, Any]:
        return self._call("POST", "/stats/reset")

    def reset(self) -> dict[str, Any]:
        return self._call("POST", "/reset")

    def close(self) -> None:
        self._session.close()
