#!/usr/bin/env bash
# Runs once when the dev container is created (postCreateCommand): installs
# MariaDB from Debian, the Python environment (.venv) and the Kafka and Flink
# jars, and starts the services, so that `make lab` opens a ready workbook.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v mariadbd >/dev/null && [ ! -x /usr/sbin/mariadbd ]; then
  echo "Installing MariaDB from Debian (about a minute)..."
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server
  # the workbook runs its own server on its own data directory; Debian's stays off
  sudo service mariadb stop >/dev/null 2>&1 || true
fi

make setup   # .venv with requirements.txt, and .env from .env.example
make up      # Kafka and Flink jars from Maven Central, MariaDB's data directory, the services
