#!/usr/bin/env bash
# Installs what `make demo` and `make test` need, only where it is missing; safe to run twice.
#   Debian: unixODBC, the SQLite3 and PostgreSQL ODBC drivers, PostgreSQL, Prometheus (promtool),
#           mmdebstrap and umoci (`make image`: the OCI image, without a container engine)
#           Chromium and its WebDriver (the console's browser tests) with a font to render pages
#   Python: a virtual environment in .venv with vb2po and its test extras
#   Kafka:  the official Apache Kafka jars, fetched once with Maven into ~/.cache/vb2po
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(unixodbc odbcinst libsqliteodbc odbc-postgresql postgresql prometheus mmdebstrap umoci
                 chromium chromium-driver fonts-dejavu-core)
missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "deps: installing Debian packages: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The Debian prometheus package may start a system service; vb2po starts its own when needed.
  $SUDO pkill -x prometheus 2>/dev/null || true
fi
odbcinst -q -d -n "SQLite3" >/dev/null && odbcinst -q -d -n "PostgreSQL Unicode" >/dev/null || {
  echo "deps: the ODBC drivers 'SQLite3' and 'PostgreSQL Unicode' are not registered in odbcinst.ini" >&2; exit 1; }

PYTHON="${PYTHON:-python3}"
stamp=.venv/.vb2po-installed
if [ ! -x .venv/bin/python ]; then
  echo "deps: creating .venv with $($PYTHON --version)" >&2
  "$PYTHON" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "deps: installing Python packages into .venv" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check -U pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
  touch "$stamp"
fi

.venv/bin/python -m devstack.kafka fetch
