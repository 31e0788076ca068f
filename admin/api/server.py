"""Serving the admin API (and its console) from the producer process, on its own port."""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from admin.actions.applied import KafkaApplied
from admin.actions.producer_view import RunningProducer
from admin.actions.redact import Redactor
from admin.api.app import AdminContext, create_admin_app
from admin.api.audit import KafkaAuditLog
from admin.api.token_store import KafkaTokenStore
from vb2po.http_server import BackgroundServer
from vb2po.live_settings import LiveSettings
from vb2po.settings import Settings

if TYPE_CHECKING:
    from producer.service import ProducerService

log = logging.getLogger(__name__)

BURST_CHECK_S = 1.0


class AdminServer:
    def __init__(self, context: AdminContext, server: BackgroundServer):
        self.context = context
        self.server = server
        self._stop = threading.Event()
        # A burst of failed sign-ins is audited when it is over, also when no request follows it.
        self._bursts = threading.Thread(target=self._audit_bursts, name="admin-auth-bursts", daemon=True)
        self._bursts.start()

    @property
    def url(self) -> str:
        return self.server.url

    def _audit_bursts(self) -> None:
        while not self._stop.wait(BURST_CHECK_S):
            try:
                self.context.audit_finished_bursts()
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("admin API: auditing failed sign-ins")

    def stop(self) -> None:
        self.server.stop()
        self._stop.set()
        self._bursts.join(timeout=5)
        self.context.audit_finished_bursts(everything=True)
        self.context.tokens.close()
        self.context.audit.close()
        self.context.applied.close()


def serve_admin(settings: Settings, service: "ProducerService", live: LiveSettings | None = None) -> AdminServer:
    """Start the admin API (the topics exist: the producer created them just before)."""
    context = AdminContext(file_settings=settings, tokens=KafkaTokenStore(settings.kafka), audit=KafkaAuditLog(settings.kafka),
                           producer=RunningProducer(service), redactor=Redactor.from_settings(settings), live=live,
                           applied=KafkaApplied(settings.kafka, settings.zone))
    server = BackgroundServer(create_admin_app(context), settings.admin.bind_address, settings.admin.port,
                              name="admin").start()
    log.info("admin API on %s; the console at %s/console/", server.url, server.url)
    return AdminServer(context, server)
