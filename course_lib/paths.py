"""Where the course writes things: ignored folders under the repository root, never beside sources."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def repo_root() -> Path:
    """Return the repository root (the folder holding ``course_lib/``), or the cwd if installed elsewhere."""
    candidate = _PACKAGE_DIR.parent
    return candidate if (candidate / "pyproject.toml").exists() else Path.cwd()


def output_dir(*parts: str) -> Path:
    """Return (and create) ``outputs/<parts...>`` under the repository root; ``outputs/`` is git-ignored."""
    path = repo_root().joinpath("outputs", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def display_path(path: Path | str) -> str:
    """Return ``path`` relative to the repository root when inside it, for printing without user paths."""
    path = Path(path).resolve()
    try:
        return path.relative_to(repo_root()).as_posix()
    except ValueError:
        return path.name
