"""Serving the admin API from the producer process, on its own port."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from vb2po.admin.app import AdminContext, create_admin_app
from vb2po.admin.audit import KafkaAuditLog
from vb2po.admin.token_store import KafkaTokenStore
from vb2po.http_server import BackgroundServer
from vb2po.live_settings import LiveSettings
from vb2po.operator.producer_view import RunningProducer
from vb2po.operator.redact import Redactor
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
