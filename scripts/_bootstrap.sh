# Shared by scripts/up and scripts/test: make .venv and install the project into it.
# Fast when nothing changed: the install is skipped while pyproject.toml and uv.lock are older
# than the stamp.
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
if [[ ! -f "$stamp" || "$root/pyproject.toml" -nt "$stamp" || "$root/uv.lock" -nt "$stamp" ]]; then
  # Exactly the versions in uv.lock; --locked refuses a lock that pyproject.toml has outgrown
  # (run `uv lock` after changing dependencies). --inexact keeps tools installed beside them.
  (cd "$root" && UV_PROJECT_ENVIRONMENT="$venv" "$venv/bin/uv" sync --quiet --locked --inexact \
    --extra dev)
  touch "$stamp"
fi
export PATH="$venv/bin:$PATH"
