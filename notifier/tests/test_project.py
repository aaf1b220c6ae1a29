"""The project's own machinery: the layer contracts hold and would catch a cycle, and the
pre-commit and GitLab CI configurations are valid and run what `make test` runs."""

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_layers_hold_and_a_cycle_brought_back_breaks_them(tmp_path: Path) -> None:
    """A lower layer importing a higher one (here mailings importing the engine, the cycle
    the layers removed) fails `make lint`, naming the import."""
    for name in ("config", "notifier", "probe_sim", "bench"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    assert lint_imports(tmp_path).returncode == 0

    models = tmp_path / "notifier" / "mailings" / "models.py"
    models.write_text(models.read_text() + "\nfrom notifier.sending import services  # noqa\n")
    broken = lint_imports(tmp_path)

    assert broken.returncode == 1
    assert "BROKEN" in broken.stdout
    assert "notifier.mailings.models -> notifier.sending.services" in broken.stdout


def test_pre_commit_runs_the_lint_and_type_checks() -> None:
    config = ROOT / ".pre-commit-config.yaml"
    check = subprocess.run(
        [str(BIN / "pre-commit"), "validate-config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    hooks = [hook for repo in yaml.safe_load(config.read_text())["repos"] for hook in repo["hooks"]]
    entries = [hook["entry"].split() for hook in hooks]
    assert {tuple(entry[:2]) for entry in entries} >= {
        (".venv/bin/ruff", "check"),
        (".venv/bin/ruff", "format"),
    }
    assert {entry[0] for entry in entries} >= {".venv/bin/mypy", ".venv/bin/lint-imports"}


def test_gitlab_ci_runs_the_readmes_test_command_with_its_servers() -> None:
    pipeline = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
    job = pipeline["test"]

    assert job["stage"] in pipeline["stages"]
    assert job["image"].startswith("python:3.11")
    installs = " ".join(job["before_script"])
    assert "postgresql" in installs
    assert "redis-server" in installs
    assert any(".ci/run" in line for line in job["script"])
    assert "make test" in (ROOT / ".ci" / "run").read_text()
