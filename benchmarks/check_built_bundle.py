"""Validate a bundle folder (or zip) with bioimageio.spec and print the result: does the zoo accept it?

Run it with the side environment's Python (``benchmarks/setup_bioimageio_env.sh`` makes it):

    benchmarks/.venv-bioimageio/bin/python benchmarks/check_built_bundle.py BUNDLE [--json]

``deepij build`` writes bundles this should pass; the tests run it on theirs (tests/trust/test_build.py).
It checks the descriptor's format only (``perform_io_checks`` reads the files and their sha256; the model
is not run: ``deepij test`` reproduces the test outputs). Prints the status, each failed check with its
location and message, and the warnings; exit status 0 when valid, 1 when not, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def check(source: Path) -> dict:
    """The validation summary of ``source`` as plain data: status, errors, warnings, seconds taken."""
    from bioimageio.spec import ValidationContext, load_description
    from bioimageio.spec import __version__ as spec_version

    start = time.perf_counter()
    descriptor = source / "rdf.yaml" if source.is_dir() else source
    with ValidationContext(perform_io_checks=True):
        described = load_description(str(descriptor))
    summary = described.validation_summary
    errors, warnings = [], []
    for detail in summary.details:
        for error in detail.errors:
            errors.append({"check": detail.name, "loc": ".".join(map(str, error.loc)), "msg": error.msg})
        for warning in detail.warnings:
            warnings.append(
                {"check": detail.name, "loc": ".".join(map(str, warning.loc)), "msg": warning.msg}
            )
    return {
        "source": str(source),
        "bioimageio.spec": spec_version,
        "type": type(described).__name__,
        "status": summary.status,
        "errors": errors,
        "warnings": warnings,
        "seconds": round(time.perf_counter() - start, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, help="bundle folder, rdf.yaml or zip")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if not args.bundle.exists():
        print(f"check_built_bundle: {args.bundle} does not exist", file=sys.stderr)
        return 2
    result = check(args.bundle)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['source']}: {result['status']} ({result['type']}, bioimageio.spec "
            f"{result['bioimageio.spec']}, {result['seconds']} s)"
        )
        for error in result["errors"]:
            print(f"  error   {error['loc']}: {error['msg']}")
        for warning in result["warnings"]:
            print(f"  warning {warning['loc']}: {warning['msg']}")
    return 0 if result["status"] in ("passed", "valid-format") else 1


if __name__ == "__main__":
    sys.exit(main())
