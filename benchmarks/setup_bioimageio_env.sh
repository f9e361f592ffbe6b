#!/usr/bin/env bash
# The side environment the benchmarks run bioimageio.core in: benchmarks/.venv-bioimageio (git-ignored).
# bioimageio.core stays out of deepij's own environment; it gets the same torch (2.13.0, the CPU wheel these
# machines have; any other torch spec pulls GBs of CUDA packages) and pydantic<2.12 (bioimageio.spec 0.5.12
# breaks with pydantic 2.14); zarr for bench_lazy.py's contender, which reads and writes Zarr stores.
# Re-running is cheap: a stamp file records what was installed.
set -euo pipefail
cd "$(dirname "$0")"
env_dir=.venv-bioimageio
py=${PYTHON:-python3}
stamp="$env_dir/.deepij-bench-stamp"
want="torch==2.13.0 bioimageio.core pydantic<2.12 zarr"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
[ -x "$env_dir/bin/python" ] || "$py" -m venv "$env_dir"
pip=("$env_dir/bin/python" -m pip install -q --disable-pip-version-check)
"${pip[@]}" "torch==2.13.0"
"${pip[@]}" "torch==2.13.0" "bioimageio.core" "pydantic<2.12" zarr
echo "$want" > "$stamp"
