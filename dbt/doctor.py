"""``dbt doctor``: which engines can run here, and the versions of what dbt runs on."""

from __future__ import annotations

import argparse
import json
from importlib import metadata

#: the Python packages dbt uses, by distribution name
PACKAGES = ("unicorn", "capstone", "keystone-engine", "lief", "qemu.qmp")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("doctor", help="which engines can run here, and library versions",
                              description="List every engine with whether it can run on this "
                                          "machine (and why not), and the versions of the "
                                          "libraries and tools dbt uses.")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_doctor)


def report() -> dict:
    """{"engines": [{name, available, why, version}], "packages": {name: version or None}}."""
    from dbt.engines import engine_names, unavailable

    engines = []
    for name in engine_names():
        why = unavailable(name)
        engines.append({"name": name, "available": why is None, "why": why,
                        "version": _engine_version(name) if why is None else None})
    return {"engines": engines, "packages": {p: _version(p) for p in PACKAGES}}


def _engine_version(name: str) -> str:
    """What the engine runs on: QEMU's version for ``qemu``, unicorn's for the others."""
    if name == "qemu":
        from dbt.engines.qemu import qemu_version

        return f"QEMU {qemu_version()}"
    return f"unicorn {_version('unicorn')}"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cmd_doctor(args: argparse.Namespace) -> int:
    r = report()
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print("engines:")
    for e in r["engines"]:
        state = f"available ({e['version']})" if e["available"] else f"unavailable: {e['why']}"
        print(f"  {e['name']:<8} {state}")
    print("packages:")
    for name, version in r["packages"].items():
        print(f"  {name:<16} {version or 'not installed'}")
    return 0
