"""Build the distributions as a release does and try them as a user would: `python -m build` (the sdist, and the
wheel built from it), `twine check --strict`, then the wheel installed with its dependencies in a fresh virtual
environment outside the checkout, running `systeme-mcp --version`, `python -m systeme_mcp --version` and
`systeme-mcp demo`. CI runs it (.ci/run); docs/releasing.md steps 3 and 4 are the same by hand.

    python -m pip install build twine && python scripts/check_dist.py [--outdir DIR]

Exits non-zero, saying which step failed, on the first failure."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from systeme_mcp import __version__  # noqa: E402  (the checkout's package, not an installed one)

STEP_TIMEOUT = 900  # seconds: an install resolves and downloads every dependency


def run(step: str, command: list[str], cwd: Path) -> str:
    """Run one step; its stdout, or exit saying what failed."""
    print(f"check_dist: {step}: {' '.join(command)}", flush=True)
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=STEP_TIMEOUT)
    if done.returncode != 0:
        sys.exit(f"check_dist: {step} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outdir", type=Path, help="where the distributions go (default: a temporary directory)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="systeme-dist-") as scratch:
        work = Path(scratch)
        outdir = (options.outdir or work / "dist").resolve()
        run("build", [sys.executable, "-m", "build", "--outdir", str(outdir), str(ROOT)], ROOT)
        built = sorted(p.name for p in outdir.iterdir())
        wanted = [f"systeme_mcp-{__version__}-py3-none-any.whl", f"systeme_mcp-{__version__}.tar.gz"]
        if sorted(wanted) != built:
            sys.exit(f"check_dist: build made {built}, not {wanted}")
        run("twine check", [sys.executable, "-m", "twine", "check", "--strict", *map(str, outdir.iterdir())], ROOT)

        env = work / "venv"
        venv.EnvBuilder(with_pip=True).create(env)
        bin_dir = env / ("Scripts" if sys.platform == "win32" else "bin")
        python, command = bin_dir / "python", bin_dir / "systeme-mcp"
        run("install the wheel", [str(python), "-m", "pip", "install", "-q", str(outdir / wanted[0])], work)
        expected = f"systeme-mcp {__version__}"
        for step, argv in (("console script", [str(command)]), ("python -m", [str(python), "-m", "systeme_mcp"])):
            answer = run(f"{step} --version", [*argv, "--version"], work).strip()
            if answer != expected:
                sys.exit(f"check_dist: {step} --version said {answer!r}, not {expected!r}")
        demo = run("demo", [str(command), "demo"], work)
        if "Done in" not in demo:
            sys.exit(f"check_dist: the demo did not finish:\n{demo[-2000:]}")
        print(f"check_dist: ok: {', '.join(built)} build, pass twine check and run from a fresh venv", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
