# Shared by scripts/up and scripts/test: make .venv and install the project into it.
# Fast when nothing changed: the install is skipped while pyproject.toml is older than the stamp.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
py="${AIRDOCK_PYTHON:-python3}"
if [[ ! -x "$venv/bin/python" ]]; then
  "$py" -m venv "$venv"
fi
if [[ ! -x "$venv/bin/uv" ]]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check uv
fi
stamp="$venv/.airdock-installed"
if [[ ! -f "$stamp" || "$root/pyproject.toml" -nt "$stamp" ]]; then
  VIRTUAL_ENV="$venv" "$venv/bin/uv" pip install --quiet -e "$root[dev]"
  touch "$stamp"
fi
export PATH="$venv/bin:$PATH"
