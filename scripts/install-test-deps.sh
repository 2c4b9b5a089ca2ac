#!/usr/bin/env bash
# Install what the tests need: the OpenSSH server and client (the SFTP tests run a real sshd and
# sftp on 127.0.0.1), the PostgreSQL server (the store's tests on PostgreSQL), Chromium and its
# driver (the status page's browser test), faketime (a node with a wrong clock) and this
# project, editable, with its [test] extras, into ./.venv (made by scripts/venv.sh, so the
# system's Python is never changed).
# Idempotent and quick when everything is already there (set INSTALL_TEST_DEPS_FORCE=1 to run pip
# anyway). It never starts a service: the tests start their own throw-away sshd.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

did=()

# -- Debian packages: OpenSSH server and client, PostgreSQL server ----------------------------------
# The SFTP tests run a real sshd and sftp on 127.0.0.1; the store's tests run a real PostgreSQL
# (initdb/pg_ctl into a temporary folder). Neither service is started here.
packages=()
if [[ ! -x /usr/sbin/sshd ]] || ! command -v sftp >/dev/null 2>&1 \
    || ! command -v ssh-keygen >/dev/null 2>&1; then
    packages+=(openssh-server openssh-client)
fi
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    packages+=(postgresql)
fi
# The status page is tested in real headless Chromium through Debian's chromedriver.
if [[ ! -x /usr/bin/chromium ]] || [[ ! -x /usr/bin/chromedriver ]]; then
    packages+=(chromium chromium-driver)
fi
# A node whose clock is wrong is run under libfaketime (a real clock, set wrong).
if ! command -v faketime >/dev/null 2>&1; then
    packages+=(faketime)
fi
if [[ ${#packages[@]} -eq 0 ]]; then
    did+=("openssh, postgresql, chromium and faketime present")
else
    SUDO=()
    if [[ "$(id -u)" -ne 0 ]]; then
        SUDO=(sudo)
    fi
    # A policy-rc.d that exits 101 stops Debian's maintainer scripts from starting services.
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    remove_policy() {
        if [[ "$created_policy" -eq 1 ]]; then
            "${SUDO[@]}" rm -f "$policy"
            created_policy=0
        fi
    }
    trap remove_policy EXIT
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
        "${SUDO[@]}" chmod 0755 "$policy"
        created_policy=1
    fi
    # Quiet unless it fails (then show apt's output).
    if ! apt_log="$("${SUDO[@]}" apt-get update -qq 2>&1 \
        && "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${packages[@]}" 2>&1)"; then
        printf '%s\n' "$apt_log" >&2
        echo "install-test-deps: apt-get failed to install ${packages[*]}" >&2
        exit 1
    fi
    remove_policy
    trap - EXIT
    did+=("installed ${packages[*]}")
fi

# -- Python: this project (editable) with its [test] extras, in ./.venv ----------------------------
# shellcheck source=scripts/venv.sh
source scripts/venv.sh
# Skip pip when this checkout is already installed editable, with up-to-date metadata, and every
# base and [test] requirement is satisfied. Any doubt (exit status 1) means: run pip.
python_deps_ok() {
    (cd / && "$PY" - "$ROOT" <<'PY'
import importlib.metadata as md
import importlib.util
import json
import sys
import tomllib
from pathlib import Path
from urllib.parse import unquote, urlparse

try:
    from packaging.requirements import Requirement
except ImportError:
    sys.exit(1)

root = Path(sys.argv[1]).resolve()
pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
project = pyproject["project"]
try:
    dist = md.distribution(project["name"])
except md.PackageNotFoundError:
    sys.exit(1)
direct = json.loads(dist.read_text("direct_url.json") or "{}")
if not direct.get("dir_info", {}).get("editable"):
    sys.exit(1)
if Path(unquote(urlparse(direct.get("url", "")).path)).resolve() != root:
    sys.exit(1)
if dist.version != project["version"]:
    sys.exit(1)

# The installed metadata must match pyproject.toml (else the editable install is stale).
def normal(requirement: str, extra: str | None = None) -> str:
    req = Requirement(requirement)
    if extra is not None:
        req = Requirement(f"{requirement}; extra == '{extra}'" if req.marker is None
                          else f"{str(req).split(';')[0]}; ({req.marker}) and extra == '{extra}'")
    return str(req)

declared = {normal(r) for r in project.get("dependencies", [])}
for extra, reqs in project.get("optional-dependencies", {}).items():
    declared |= {normal(r, extra) for r in reqs}
if declared != {str(Requirement(r)) for r in dist.requires or []}:
    sys.exit(1)
scripts = {ep.name: ep.value for ep in dist.entry_points if ep.group == "console_scripts"}
if scripts != project.get("scripts", {}):
    sys.exit(1)

# Every base and [test] requirement is installed in a matching version.
wanted = [*project.get("dependencies", []), *project.get("optional-dependencies", {}).get("test", [])]
for requirement in wanted:
    req = Requirement(requirement)
    if req.marker is not None and not req.marker.evaluate({"extra": "test"}):
        continue
    try:
        version = md.version(req.name)
    except md.PackageNotFoundError:
        sys.exit(1)
    if not req.specifier.contains(version, prereleases=True):
        sys.exit(1)

# The project's packages import from this checkout.
find = pyproject.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {})
for pattern in find.get("include", []):
    name = pattern.split(".")[0].rstrip("*")
    if name:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None or root not in Path(spec.origin).resolve().parents:
            sys.exit(1)
PY
    )
}

if [[ "${INSTALL_TEST_DEPS_FORCE:-0}" != "1" ]] && python_deps_ok; then
    did+=("python deps present")
else
    PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install -q --disable-pip-version-check -e ".[test]"
    did+=("pip-installed -e .[test]")
fi

joined=""
for step in "${did[@]}"; do
    joined+="${joined:+, }$step"
done
echo "install-test-deps: $joined"
