#!/usr/bin/env bash
# Installs what the CloudWatch end-to-end test (tests/cloudwatch.rs) needs, when it is
# missing: Docker Engine from Debian's packages, and moto's CloudWatch Logs server from PyPI.
# Runs as root (as CI does); exits non-zero when either cannot be installed.
set -euo pipefail

if ! command -v dockerd >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi
if ! python3 -c "import moto.server, flask" >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check "moto[server,logs]"
fi
command -v dockerd docker ldd tar >/dev/null
python3 -c "import moto.server"
