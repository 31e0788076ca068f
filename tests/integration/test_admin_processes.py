"""The operator surface between real processes: `vb2po producer` serves the admin API, and the
`vb2po` commands an operator types reach it with a token made by the local bootstrap command."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.sandbox import SANDBOX_CLIENT_KEY
from tests.operator_stack import operator_settings, settings_file
from tests.services import wait_for

pytestmark = pytest.mark.integration

VB2PO = str(Path(sys.executable).parent / "vb2po")


def test_the_producer_process_serves_the_admin_api_that_the_commands_use(kafka_bootstrap, sandbox_server,
                                                                       sqlite_company_db, tmp_path):
    path = settings_file(tmp_path, operator_settings(kafka_bootstrap, sandbox_server, {1: sqlite_company_db},
                                                     {1: SANDBOX_CLIENT_KEY}))
    log = tmp_path / "producer.log"
    with open(log, "w") as out:
        producer = subprocess.Popen([VB2PO, "--config", str(path), "producer"], stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
    try:
        url = wait_for(lambda: (m := re.search(r"admin API on (http://[0-9.]+:[0-9]+)", log.read_text())) and m.group(1),
                       timeout=60, what="the producer to serve the admin API")
        made = subprocess.run([VB2PO, "--config", str(path), "token", "create", "--user", "alma", "--local"],
                              capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        env = {**os.environ, "VB2PO_TOKEN": made.stdout.strip(), "VB2PO_ADMIN_URL": url}
        status = subprocess.run([VB2PO, "status"], capture_output=True, text=True, timeout=60, env=env)
        assert status.returncode == 0, status.stderr
        assert "company 1  invoice clients: client-1" in status.stdout
        fetched = subprocess.run([VB2PO, "fetch-now", "--all"], capture_output=True, text=True, timeout=60, env=env)
        assert fetched.returncode == 0 and "company 1 (client-1):" in fetched.stdout
        denied = subprocess.run([VB2PO, "status"], capture_output=True, text=True, timeout=60,
                                env={**env, "VB2PO_TOKEN": "vb2po_000000000000_" + "x" * 43})
        assert denied.returncode == 1 and "not signed in" in denied.stderr
    finally:
        producer.send_signal(signal.SIGTERM)
        producer.wait(timeout=30)
    assert producer.returncode == 0
