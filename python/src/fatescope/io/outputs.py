"""Atomic stage outputs and provenance files (versions.yml, params, command line).

A stage writes into a hidden temporary folder beside its outdir; only when the stage returns
are the files moved into place, so a failed stage leaves no half-written output.
"""
from __future__ import annotations

import contextlib
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import yaml

from .. import __version__

MANIFEST = ".fatescope_outputs"  # the names a stage published into its folder, one per line


def package_versions(packages: Iterable[str]) -> dict[str, str]:
    """Installed versions of ``packages`` (``fatescope`` and python always included)."""
    out = {"fatescope": __version__, "python": platform.python_version()}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def versions_yml(process: str, packages: Iterable[str], extra: dict[str, str] | None = None) -> str:
    """nf-core style versions.yml text: ``"FATESCOPE:<PROCESS>": {tool: version}``; ``extra``: tools that are not
    Python packages (e.g. R and mashr behind ``mash --engine r``)."""
    # the Nextflow process name: fate-fit -> FATE_FIT
    tools = {**package_versions(packages), **(extra or {})}
    return yaml.safe_dump({f"FATESCOPE:{process.upper().replace('-', '_')}": tools}, sort_keys=False)


def _jsonable(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


@contextlib.contextmanager
def staged_output(outdir: str | os.PathLike, stage: str, params: dict, packages: Iterable[str] = (),
                  extra_versions: dict[str, str] | None = None) -> Iterator[Path]:
    """Yield a temporary folder; on success move its files into ``outdir`` with provenance.

    On any exception the temporary folder is removed and ``outdir`` is left as it was.
    """
    outdir = Path(outdir)
    outdir.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{outdir.name or 'out'}.{stage}."
    _remove_abandoned(outdir.parent, prefix)
    tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}.", dir=outdir.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes 0700; the published folder should look like any other
    try:
        yield tmp
        (tmp / "versions.yml").write_text(versions_yml(stage, packages, extra_versions))
        (tmp / "params.yaml").write_text(yaml.safe_dump(_jsonable(dict(params)), sort_keys=True))
        (tmp / "command.txt").write_text(" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) + "\n")
        _publish(tmp, outdir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_abandoned(parent: Path, prefix: str) -> None:
    """Remove temporary folders ``<prefix><pid>.*`` of runs that were killed (kill -9, node loss) before they could
    clean up: their process no longer exists. Folders of live processes (a concurrent run) are left alone."""
    for folder in parent.glob(f"{prefix}*"):
        pid = folder.name[len(prefix):].split(".", 1)[0]
        if folder.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def _publish(tmp: Path, outdir: Path) -> None:
    """Move the finished files of ``tmp`` into ``outdir`` (rename when possible).

    ``outdir`` may hold files that are not ours, so it is not replaced as a whole: the files an
    earlier run of a stage published there (listed in its MANIFEST) and this run does not write
    are removed, so the folder holds one run's outputs (no stale mash_*_enriched.csv after a
    conservative-only rerun, no umap_leiden.png after a rerun without it)."""
    names = sorted(item.name for item in tmp.iterdir())
    (tmp / MANIFEST).write_text("\n".join(names) + "\n")
    if not outdir.exists():
        tmp.rename(outdir)
        tmp.mkdir()  # keep the finally-clause's rmtree happy
        return
    previous = (outdir / MANIFEST).read_text().split() if (outdir / MANIFEST).is_file() else []
    for name in sorted(set(previous) - set(names) - {MANIFEST}):
        _remove(outdir / Path(name).name)
    for item in sorted(tmp.iterdir()):
        target = outdir / item.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(item, target)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
