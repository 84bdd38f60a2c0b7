"""Every parameter of every notebook is checked: a wrong-typed value fails in `check_params`.

For each notebook this test reads the `parameters` cell (names and default values) and the
cell after it, and calls its `check_params(...)` exactly as the notebook does (same rules,
same datasets), once with the defaults (which must pass) and once per parameter with a
value of the wrong type, which must raise a ValueError that names the parameter. A new
parameter without a rule fails here (and in `check_params` itself), so none slips in
unchecked. A few real papermill runs in tests/test_papermill.py check the same end to end.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))


def _code_cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The names and literal default values of a notebook's parameters cell."""
    params: dict[str, Any] = {}
    for node in ast.parse(_code_cells(path)[0]).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            params[node.targets[0].id] = ast.literal_eval(node.value)
    return params


def parameter_check(path: Path):
    """A function(**values) that runs the notebook's own `check_params(...)` call on `values`.

    Takes the check cell's imports and the simple assignments before the call (e.g. a shared
    rule such as `photo_rule = ...`), then the `check_params(...)` call itself, with
    `injected=set()` so that IPython's history plays no part.
    """
    source = _code_cells(path)[1]
    tree = ast.parse(source)
    prelude: list[ast.stmt] = []
    call: ast.Call | None = None
    for stmt in tree.body:
        found = [n for n in ast.walk(stmt) if isinstance(n, ast.Call)
                 and getattr(n.func, "attr", getattr(n.func, "id", "")) == "check_params"]
        if found:
            call = found[0]
            break
        if isinstance(stmt, (ast.Import, ast.ImportFrom)) or (
            isinstance(stmt, ast.Assign) and all(isinstance(t, ast.Name) for t in stmt.targets)
        ):
            prelude.append(stmt)
    assert call is not None, f"{path.name}: the cell after parameters does not call check_params"
    empty_set = ast.Call(func=ast.Name("set", ast.Load()), args=[], keywords=[])
    call.keywords.append(ast.keyword(arg="injected", value=empty_set))
    module = ast.Module(body=[*prelude, ast.Assign(targets=[ast.Name("__checked__", ast.Store())], value=call)],
                        type_ignores=[])
    code = compile(ast.fix_missing_locations(module), f"<{path.name} check cell>", "exec")

    def run(**values: Any):
        namespace: dict[str, Any] = dict(values)
        exec(code, namespace)  # noqa: S102 - the notebook's own code, from this repository
        return namespace["__checked__"]

    return run


def wrong_type(value: Any) -> Any:
    """A value of a different type from `value`, as a mistyped papermill `-p` would give."""
    if isinstance(value, bool):
        return "no"  # a non-empty string is truthy: it must not pass as True
    if isinstance(value, (int, float)):
        return "ten"
    if isinstance(value, str):
        return 12345
    if isinstance(value, (list, tuple)):
        return "not a list"
    return 3.5  # None defaults (paths): a number is not a path


PARAMETERS = [(path, name) for path in NOTEBOOKS for name in notebook_parameters(path)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_defaults_pass_the_notebooks_own_check(path: Path):
    defaults = notebook_parameters(path)
    checked = parameter_check(path)(**defaults)
    assert set(checked) == set(defaults), "check_params must receive every parameter of the parameters cell"


@pytest.mark.parametrize(("path", "name"), PARAMETERS, ids=[f"{p.stem}-{n}" for p, n in PARAMETERS])
def test_a_wrong_typed_value_fails_naming_the_parameter(path: Path, name: str):
    values = notebook_parameters(path)
    values[name] = wrong_type(values[name])
    with pytest.raises(ValueError) as err:
        parameter_check(path)(**values)
    assert name in str(err.value), f"the message must name {name!r}: {err.value}"


def test_every_notebook_has_parameters():
    assert NOTEBOOKS and all(notebook_parameters(p) for p in NOTEBOOKS)


def readme_reruns() -> list[tuple[str, dict[str, Any]]]:
    """The papermill commands in README.md and README.zh.md: (notebook name, {parameter: value})."""
    import shlex

    import yaml

    runs = []
    text = "\n".join((ROOT / name).read_text(encoding="utf-8") for name in ("README.md", "README.zh.md"))
    for line in text.splitlines():
        if not line.startswith(("$PM ", ".venv/bin/papermill ")):
            continue
        words = shlex.split(line)
        notebook = next(w for w in words if w.endswith(".ipynb"))
        values = {words[i + 1]: yaml.safe_load(words[i + 2]) for i, w in enumerate(words) if w == "-p"}
        runs.append((Path(notebook).name, values))
    return runs


def test_both_readmes_list_every_notebook_with_the_same_commands():
    english = (ROOT / "README.md").read_text(encoding="utf-8")
    chinese = (ROOT / "README.zh.md").read_text(encoding="utf-8")
    assert "README.zh.md" in english.split("\n## ")[0], "README.md links the Chinese README at the top"
    for path in NOTEBOOKS:
        link = f"[{path.stem}](notebooks/{path.name})"
        assert link in english and link in chinese, f"{path.name} is missing from a README's chapter table"
    commands = [line for line in english.splitlines() if line.startswith(("$PM ", ".venv/bin/papermill "))]
    assert commands and all(line in chinese for line in commands), "README.zh.md has other papermill commands"


@pytest.mark.parametrize(("name", "values"), readme_reruns(), ids=[n for n, _ in readme_reruns()])
def test_the_readmes_papermill_commands_pass_the_parameter_check(name: str, values: dict[str, Any], tmp_path: Path):
    path = ROOT / "notebooks" / name
    assert path.is_file(), f"README names a notebook that does not exist: {name}"
    params = notebook_parameters(path)
    unknown = set(values) - set(params)
    assert not unknown, f"README passes parameters {unknown} that {name} does not have"
    for key, value in values.items():  # paths in the examples need not exist on this machine
        if isinstance(value, str) and ("/" in value or value.startswith("~")):
            values[key] = str(tmp_path) if key != "checkpoint" else None
    params.update(values)
    parameter_check(path)(**params)
