"""Result files: one naming scheme, atomic writes, and no silent replacement of another configuration's result.

Every benchmark writes ``benchmarks/results/<experiment>_<config>.json``: ``<experiment>`` is the module that
measured it (``bench_losses``, ``quality_cline``, ...; lower-case, ``_`` allowed) and ``<config>`` names the
setting (a preset such as ``cpu-tiny``, or a name derived from the run's options such as ``mlm0.1-lr1e-5``;
lower-case letters, digits, ``.``, ``+`` and ``-``, never ``_``, so the name splits back at its first
``_<config>`` boundary). ``--config-name`` picks another ``<config>``, ``--output`` any other path.

A file written here is the benchmark's own payload plus one key, ``harness``: ``{"experiment", "config_name",
"config", "command", "date"}``, where ``config`` holds the settings that define the run. A file of separate
runs that several invocations add to (:meth:`ResultTarget.merge_run`, under a file lock) holds them under
``runs`` (``{"paper-mlm0.1-steps150": {"harness": {"config", "command", "date"}, ...}}``) and only
``experiment`` and ``config_name`` in its top-level ``harness``.

Writing over a result whose stored ``config`` differs, or over a file the harness did not write (its
configuration is unknown), raises :class:`ResultExists` unless ``overwrite`` (``--overwrite``) is given; the
scripts check this before they start measuring. A rerun with the same configuration replaces its result.
Files are written to a temporary file in the same folder and moved into place, so a reader never sees half of
one and an interrupted run leaves the previous result intact.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shlex
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"
EXPERIMENT_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
CONFIG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")


class ResultExists(RuntimeError):
    """A result of another configuration (or of unknown configuration) is in the way; ``--overwrite`` replaces it."""


def result_path(experiment: str, config_name: str, results_dir: str | Path | None = None) -> Path:
    """``<results_dir>/<experiment>_<config_name>.json`` (default folder ``benchmarks/results``), names checked."""
    if not EXPERIMENT_PATTERN.match(experiment):
        raise ValueError(f"experiment names are lower-case snake_case (the module's name), got {experiment!r}")
    if not CONFIG_PATTERN.match(config_name):
        raise ValueError(
            f"config names use lower-case letters, digits, '.', '+' and '-' (no '_', no spaces), got {config_name!r}"
        )
    return Path(results_dir if results_dir is not None else RESULTS_DIR) / f"{experiment}_{config_name}.json"


def split_result_name(name: str, experiments: Sequence[str]) -> tuple[str, str] | None:
    """``(experiment, config)`` of a file name that follows the scheme for one of ``experiments``, else None."""
    stem = name.removesuffix(".json")
    if stem == name:
        return None
    for experiment in sorted(experiments, key=len, reverse=True):
        config = stem.removeprefix(experiment + "_")
        if config != stem and CONFIG_PATTERN.match(config):
            return experiment, config
    return None


def command_line(module: str, argv: Sequence[str] | None = None) -> str:
    """How this run was started: ``OMP_NUM_THREADS=N python -m benchmarks.<module> ARGS``."""
    args = list(sys.argv[1:] if argv is None else argv)
    threads = os.environ.get("OMP_NUM_THREADS", "?")
    return f"OMP_NUM_THREADS={threads} python -m benchmarks.{module} {shlex.join(args)}".rstrip()


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def _normalised(config: Mapping[str, Any]) -> Any:
    return json.loads(json.dumps(dict(config), sort_keys=True))


def _differences(old: Any, new: Any) -> str:
    if not isinstance(old, dict) or not isinstance(new, dict):
        return f"stored {old!r}, now {new!r}"
    keys = sorted(k for k in set(old) | set(new) if old.get(k, "<absent>") != new.get(k, "<absent>"))
    return "; ".join(f"{k}: stored {old.get(k, '<absent>')!r}, now {new.get(k, '<absent>')!r}" for k in keys[:6])


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(data, indent=2) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(f".{path.name}.lock")
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class ResultTarget:
    """Where one run's result goes, and whether it may replace a result of another configuration."""

    path: Path
    experiment: str
    config_name: str | None = None
    overwrite: bool = False

    def _existing(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise ResultExists(f"{self.path} exists and is not readable JSON ({error}); pass --overwrite") from error
        return data if isinstance(data, dict) else {}

    def check(self, config: Mapping[str, Any], run_key: str | None = None) -> None:
        """Raise :class:`ResultExists` if writing a result of ``config`` (as run ``run_key``) would replace a
        result of another configuration. Call it before measuring, so a refused run costs nothing."""
        if self.overwrite:
            return
        data = self._existing()
        if data is None:
            return
        hint = "pass --overwrite to replace it, or --config-name/--output to write elsewhere"
        stamp = data.get("harness")
        if not isinstance(stamp, dict):
            raise ResultExists(f"{self.path} holds a result the harness did not write (configuration unknown); {hint}")
        wanted = _normalised(config)
        if run_key is None:
            if "config" not in stamp:
                raise ResultExists(f"{self.path} holds separate runs, not one result; {hint}")
            if stamp["config"] != wanted:
                raise ResultExists(
                    f"{self.path} holds a result of another configuration ({_differences(stamp['config'], wanted)}); "
                    + hint
                )
            return
        if "config" in stamp or not isinstance(data.get("runs"), dict):
            raise ResultExists(f"{self.path} holds one whole result, not separate runs; {hint}")
        stored = data["runs"].get(run_key)
        if stored is not None:
            old = (stored.get("harness") or {}).get("config")
            if old != wanted:
                raise ResultExists(
                    f"{self.path} holds run {run_key!r} of another configuration ({_differences(old, wanted)}); {hint}"
                )

    def _stamp(self, **fields: Any) -> dict[str, Any]:
        return {"experiment": self.experiment, "config_name": self.config_name, **fields}

    def write(self, payload: Mapping[str, Any], config: Mapping[str, Any], command: str) -> Path:
        """Write one whole result: the payload plus ``harness`` (experiment, config name, ``config``, command,
        date). Refused (see :meth:`check`) over another configuration's result."""
        if "harness" in payload:
            raise ValueError("the payload key 'harness' is reserved for the harness's stamp")
        with _locked(self.path):
            self.check(config)
            stamp = self._stamp(config=_normalised(config), command=command, date=now())
            write_json_atomic(self.path, {"harness": stamp, **payload})
        return self.path

    def merge_run(
        self,
        key: str,
        entry: Mapping[str, Any],
        config: Mapping[str, Any],
        command: str,
        shared: Mapping[str, Any] | None = None,
    ) -> Path:
        """Add (or, same configuration, replace) run ``key`` in the file, keeping the other runs; ``shared``
        fields are stored at the top level. Safe against other processes merging into the same file."""
        if "harness" in entry or {"harness", "runs"} & set(shared or {}):
            raise ValueError("the keys 'harness' (and, at the top level, 'runs') are reserved for the harness")
        with _locked(self.path):
            self.check(config, run_key=key)
            data = None if self.overwrite else self._existing()
            if data is None:
                data = {"harness": self._stamp(), "runs": {}}
            data.update(shared or {})
            stamp = {"config": _normalised(config), "command": command, "date": now()}
            data["runs"][key] = {"harness": stamp, **entry}
            write_json_atomic(self.path, data)
        # one overwrite replaces the old file once; later runs of this invocation merge into the new one
        self.overwrite = False
        return self.path


def add_result_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config-name``, ``--output``, ``--results-dir`` and ``--overwrite``, the same in every benchmark."""
    group = parser.add_argument_group("result file")
    group.add_argument(
        "--config-name",
        help="the <config> part of benchmarks/results/<experiment>_<config>.json (default: named after the options)",
    )
    group.add_argument("--output", help="write the result to this file instead")
    group.add_argument("--results-dir", help="folder for <experiment>_<config>.json (default: benchmarks/results)")
    group.add_argument(
        "--overwrite", action="store_true", help="replace a result of another configuration at the same path"
    )


def target_from_args(args: argparse.Namespace, experiment: str, default_config: str) -> ResultTarget:
    """The :class:`ResultTarget` chosen by :func:`add_result_arguments`' options."""
    config_name = args.config_name or default_config
    if args.output:
        path = Path(args.output)
    else:
        path = result_path(experiment, config_name, args.results_dir)
    return ResultTarget(path, experiment, config_name, overwrite=args.overwrite)


def check_writable(target: ResultTarget, config: Mapping[str, Any], run_key: str | None = None) -> None:
    """:meth:`ResultTarget.check` that ends the program with the reason (exit status 1) instead of a traceback."""
    try:
        target.check(config, run_key)
    except ResultExists as error:
        raise SystemExit(f"refusing to write: {error}") from None


def merge_run(target: ResultTarget, *args: Any, **kwargs: Any) -> Path:
    return target.merge_run(*args, **kwargs)


def write_result(target: ResultTarget, *args: Any, **kwargs: Any) -> Path:
    return target.write(*args, **kwargs)


def format_number(value: float) -> str:
    """A number as it reads in a config name: ``0.1``, ``1e-5`` (not ``1e-05``), ``2``."""
    return f"{value:g}".replace("e-0", "e-").replace("e+0", "e+")
