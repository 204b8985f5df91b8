"""The shape issue 32 asks of ``src/``: no function over 80 lines, ``create_app`` under 60."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "celebface"
MAX_LINES = 80


def long_functions(root: Path, limit: int) -> dict[tuple[str, str], int]:
    """(module under ``root``, function) -> lines, of every function longer than ``limit``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > limit:
                    out[(path.relative_to(root).as_posix(), node.name)] = lines
    return out


def test_no_function_in_src_is_over_80_lines() -> None:
    over = long_functions(SRC, MAX_LINES)
    assert not over, f"split these into helpers: {over}"
    assert ("serve/app.py", "create_app") not in long_functions(SRC, 59)  # routes in routers


def test_the_check_finds_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "m.py").write_text(f"def short():\n    pass\n\n\ndef long():\n{body}\n")
    assert long_functions(tmp_path, MAX_LINES) == {("m.py", "long"): MAX_LINES + 1}
