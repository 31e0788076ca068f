"""Serving the admin API from the producer process, on its own port."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from admin.api.app import AdminContext, create_admin_app
from admin.api.audit import KafkaAuditLog
from admin.api.token_store import KafkaTokenStore
from vb2po.http_server import BackgroundServer
from vb2po.live_settings import LiveSettings
from admin.actions.producer_view import RunningProducer
from admin.actions.redact import Redactor
from vb2po.settings import Settings

if TYPE_CHECKING:
    from producer.service import ProducerService

log = logging.getLogger(__name__)


class AdminServer:
    def __init__(self, context: AdminContext, server: BackgroundServer):
        self.context = context
        self.server = server

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()
        self.context.tokens.close()
        self.context.audit.close()


def serve_admin(settings: Settings, service: "ProducerService", live: LiveSettings | None = None) -> AdminServer:
    """Start the admin API (the topics exist: the producer created them just before)."""
    context = AdminContext(file_settings=settings, tokens=KafkaTokenStore(settings.kafka), audit=KafkaAuditLog(settings.kafka),
                           producer=RunningProducer(service), redactor=Redactor.from_settings(settings), live=live)
    server = BackgroundServer(create_admin_app(context), settings.admin.bind_address, settings.admin.port,
                              name="admin").start()
    log.info("admin API on %s", server.url)
    return AdminServer(context, server)
