#!/usr/bin/env bash
# Sourced by the other scripts: make sure ./.venv exists (a virtual environment of python3, so
# that the system's own, "externally managed" Python of Debian 12 or Ubuntu 24.04 is never
# changed) and set PY to its interpreter. Installs Debian's python3-venv when python3 cannot
# make one.
VENV="${ROOT:?}/.venv"
PY="$VENV/bin/python"
if [[ ! -x "$PY" ]] || ! "$PY" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
        rm -rf "$VENV"
        SUDO=()
        [[ "$(id -u)" -ne 0 ]] && SUDO=(sudo)
        minor="$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        "${SUDO[@]}" apt-get update -qq
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends python3-venv "python${minor}-venv" >/dev/null \
            || "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                --no-install-recommends python3-venv >/dev/null
        python3 -m venv "$VENV"
    fi
    "$PY" -m pip install -q --disable-pip-version-check --upgrade pip
fi
export PY
