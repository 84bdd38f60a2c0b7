"""Run setup shared by every notebook: seeding, device choice, parameter checks, run report.

A notebook's first code cells look like this::

    # parameters cell (tagged `parameters`)
    seed = 0
    device = "auto"
    dataset = "digits"
    epochs = 3

    # next cell
    params = helpers.check_params(seed=seed, device=device, dataset=dataset, epochs=epochs)
    run = helpers.setup(params)

`check_params` turns a bad papermill parameter into a ValueError that names the parameter,
the bad value and the valid choices; `setup` seeds everything, picks the device, sets the
book's plotting style and returns a `RunReport` that prints how the notebook was produced.
"""

from __future__ import annotations

import ast
import difflib
import os
import platform
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .style import set_style

__all__ = [
    "CHAPTERS",
    "boolean",
    "check",
    "existing_path",
    "list_of",
    "number",
    "one_of",
    "optional",
    "text",
    "DATASETS",
    "Params",
    "RunReport",
    "check_params",
    "course_root",
    "fraction",
    "interactive",
    "one_of",
    "whole_number",
    "default_data_dir",
    "default_output_dir",
    "resolve_device",
    "seed_everything",
    "setup",
]

#: The book's chapters: notebook prefix -> (English title, Chinese title).
CHAPTERS = {
    "01": ("Background", "背景介绍"),
    "02": ("Core concepts", "核心概念与联系"),
    "03": ("Algorithms and mathematical models", "核心算法原理和数学模型"),
    "04": ("Code examples", "具体代码实例"),
    "05": ("Future trends and challenges", "未来发展趋势与挑战"),
    "06": ("FAQ", "常见问题与解答"),
}

#: Dataset names that `helpers.data.load_dataset` understands.
DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10", "folder")
DEVICES = ("auto", "cpu", "cuda", "mps")


def course_root() -> Path:
    """The repository root (the folder holding `helpers/` and `notebooks/`)."""
    return Path(__file__).resolve().parent.parent


def default_data_dir() -> Path:
    """Where datasets live: `$COURSE_DATA_DIR` if set, else the repository's `data/` folder."""
    env = os.environ.get("COURSE_DATA_DIR")
    return Path(env).expanduser() if env else course_root() / "data"


def default_output_dir(notebook: str | None = None) -> Path:
    """Where notebooks write files (checkpoints, exports): `build/outputs/<notebook>/`."""
    out = course_root() / "build" / "outputs"
    return out / notebook if notebook else out


# --------------------------------------------------------------------------- seeding, device


def interactive() -> bool:
    """True in a terminal or a JupyterLab/Notebook session; False under papermill, nbval and CI.

    Progress bars are shown only then: tqdm writes to stderr, and committed notebooks carry
    no stderr output.
    """
    import sys

    return sys.stderr.isatty() or "JPY_SESSION_NAME" in os.environ


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a run can be repeated exactly."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn "auto" into the best available device (cuda, then mps, then cpu).

    An explicit device that is not available raises a ValueError that says what is.
    """
    name = str(device)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind not in DEVICES:
        raise ValueError(
            f"device={name!r} is not a device this course knows; "
            f"valid choices: {', '.join(repr(d) for d in DEVICES)}"
        )
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={name!r} was asked for, but no CUDA GPU is available on this machine; "
            "use device='auto' (picks the GPU when there is one) or device='cpu'"
        )
    if kind == "mps" and not (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    ):
        raise ValueError(
            f"device={name!r} was asked for, but Apple's MPS backend is not available here; "
            "use device='auto' or device='cpu'"
        )
    return torch.device(name)


# --------------------------------------------------------------------------- parameters


class Params(dict):
    """The checked parameters of a notebook run: a dict with attribute access."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.items())
        return f"Params({inner})"


def _int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(
            f"parameter {name}={value!r} must be a whole number >= {minimum} "
            f"(got {type(value).__name__}); e.g. papermill -p {name} {max(minimum, 1)}"
        )
    if value < minimum:
        raise ValueError(
            f"parameter {name}={value!r} is out of range: it must be >= {minimum}; "
            f"e.g. papermill -p {name} {max(minimum, 1)}"
        )
    return int(value)


def _positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"parameter {name}={value!r} must be a number > 0 (got {type(value).__name__})")
    if not value > 0:
        raise ValueError(f"parameter {name}={value!r} is out of range: it must be > 0")
    return float(value)


def _fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"parameter {name}={value!r} must be a number in [0, 1)")
    if not 0 <= value < 1:
        raise ValueError(f"parameter {name}={value!r} is out of range: it must be in [0, 1)")
    return float(value)


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(
            f"parameter {name}={value!r} must be True or False (got {type(value).__name__}); "
            f"e.g. papermill -p {name} True"
        )
    return bool(value)


def _dataset(name: str, value: Any, choices: tuple[str, ...] = DATASETS) -> str:
    if value not in choices:
        hint = difflib.get_close_matches(str(value), choices, n=1)
        did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ValueError(
            f"parameter {name}={value!r} is not a dataset this notebook knows{did_you_mean}; "
            f"valid choices: {', '.join(repr(c) for c in choices)}"
        )
    return str(value)


def whole_number(minimum: int = 0, maximum: int | None = None) -> Callable[[str, Any], int]:
    """A rule for `check_params(rules=...)`: a whole number >= `minimum` (and <= `maximum`)."""

    def rule(name: str, value: Any) -> int:
        value = _int(name, value, minimum)
        if maximum is not None and value > maximum:
            raise ValueError(
                f"parameter {name}={value!r} is out of range: it must be <= {maximum}; "
                f"e.g. papermill -p {name} {maximum}"
            )
        return value

    return rule


def number(
    minimum: float | None = None, maximum: float | None = None, *, strict_minimum: bool = False
) -> Callable[[str, Any], float]:
    """A rule: a real number (an int is accepted) within [minimum, maximum].

    `strict_minimum=True` excludes the minimum itself (e.g. a learning rate > 0).
    """
    low = "(" if strict_minimum else "["
    span = f"{low}{'-inf' if minimum is None else minimum}, {'inf' if maximum is None else maximum}]"

    def rule(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(
                f"parameter {name}={value!r} must be a number in {span} "
                f"(got {type(value).__name__}); e.g. papermill -p {name} {minimum or 1}"
            )
        too_low = minimum is not None and (value <= minimum if strict_minimum else value < minimum)
        if too_low or (maximum is not None and value > maximum):
            raise ValueError(f"parameter {name}={value!r} is out of range: it must be in {span}")
        return float(value)

    return rule


def fraction() -> Callable[[str, Any], float]:
    """A rule for `check_params(rules=...)`: a number in [0, 1)."""
    return _fraction


def boolean() -> Callable[[str, Any], bool]:
    """A rule: True or False (papermill's `-p fast False`), never a string such as 'no'."""
    return _bool


def text(pattern: str | None = None) -> Callable[[str, Any], str]:
    """A rule: a string (matching the regular expression `pattern` if given)."""
    import re

    def rule(name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"parameter {name}={value!r} must be a string (got {type(value).__name__})")
        if pattern is not None and not re.fullmatch(pattern, value):
            raise ValueError(f"parameter {name}={value!r} must match {pattern!r}")
        return value

    return rule


def one_of(choices) -> Callable[[str, Any], Any]:
    """A rule for `check_params(rules=...)`: the value must be one of `choices`."""
    valid = tuple(choices)

    def rule(name: str, value: Any) -> Any:
        if isinstance(value, bool) and not any(isinstance(c, bool) for c in valid):
            raise ValueError(f"parameter {name}={value!r} must be one of {', '.join(map(repr, valid))}")
        if value not in valid:
            hint = difflib.get_close_matches(str(value), [str(c) for c in valid], n=1)
            did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ValueError(
                f"parameter {name}={value!r} is not valid{did_you_mean}; "
                f"valid choices: {', '.join(repr(c) for c in valid)}"
            )
        return value

    return rule


def list_of(
    item_rule: Callable[[str, Any], Any], min_length: int = 1, max_length: int | None = None
) -> Callable[[str, Any], list]:
    """A rule: a list (or tuple) whose every item passes `item_rule`; returned as a list."""

    def rule(name: str, value: Any) -> list:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ValueError(
                f"parameter {name}={value!r} must be a list (got {type(value).__name__}); "
                f"e.g. papermill -y '{name}: [...]'"
            )
        if len(value) < min_length or (max_length is not None and len(value) > max_length):
            most = "" if max_length is None else f" and at most {max_length}"
            raise ValueError(
                f"parameter {name}={value!r} must have at least {min_length}{most} items "
                f"(it has {len(value)})"
            )
        return [item_rule(f"{name}[{i}]", v) for i, v in enumerate(value)]

    return rule


def optional(rule: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    """A rule: None, or a value that passes `rule`."""
    return lambda name, value: None if value is None else rule(name, value)


def existing_path(kind: str = "file") -> Callable[[str, Any], Path]:
    """A rule: a path (str) to an existing file (`kind="file"`) or folder (`kind="folder"`)."""
    if kind not in ("file", "folder"):
        raise ValueError(f"kind={kind!r}: valid choices are 'file' and 'folder'")

    def rule(name: str, value: Any) -> Path:
        if not isinstance(value, (str, os.PathLike)) or not str(value):
            raise ValueError(
                f"parameter {name}={value!r} must be the path of an existing {kind} (a string); "
                f"e.g. papermill -p {name} ~/my_images"
            )
        path = Path(value).expanduser()
        if not path.exists():
            raise ValueError(f"parameter {name}={str(value)!r}: no such {kind}; pass an existing {kind}")
        if kind == "file" and not path.is_file():
            raise ValueError(f"parameter {name}={str(value)!r} is a folder, not a file")
        if kind == "folder" and not path.is_dir():
            raise ValueError(f"parameter {name}={str(value)!r} is a file, not a folder")
        return path

    return rule


def _device(name: str, value: Any) -> str:
    if not isinstance(value, (str, torch.device)):
        raise ValueError(f"parameter {name}={value!r} must be a string such as 'auto' or 'cpu'")
    resolve_device(value)  # raises a clear error if unavailable
    return str(value)


def _directory(name: str, value: Any, must_exist: bool = False) -> Path | None:
    """A folder the notebook reads from or writes to; None means the course default."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"parameter {name}={value!r} must be a folder path (a string) or None")
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"parameter {name}={str(value)!r} is a file, not a folder; pass a folder path")
    if not path.exists():
        if must_exist:
            raise ValueError(
                f"parameter {name}={str(value)!r}: the folder does not exist; "
                "create it or pass an existing folder (None uses the course default)"
            )
        parent = next((p for p in path.parents if p.exists()), None)
        if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK):
            why = "it is a file" if parent is not None and not parent.is_dir() else "no write permission"
            raise ValueError(
                f"parameter {name}={str(value)!r}: the folder does not exist and cannot be created "
                f"in {str(parent)!r} ({why}); pass a writable folder"
            )
    elif not os.access(path, os.W_OK):
        raise ValueError(
            f"parameter {name}={str(value)!r}: the folder is not writable; pass a writable folder "
            "(downloads and outputs are written there)"
        )
    return path


#: Rules for the parameter names the notebooks share. A notebook may pass `rules=` for its own.
RULES: dict[str, Callable[[str, Any], Any]] = {
    "seed": lambda n, v: _int(n, v, 0),
    "epochs": lambda n, v: _int(n, v, 1),
    "batch_size": lambda n, v: _int(n, v, 1),
    "n_seeds": lambda n, v: _int(n, v, 1),
    "repeats": lambda n, v: _int(n, v, 1),
    "n_per_class": lambda n, v: _int(n, v, 1),
    "threads": lambda n, v: _int(n, v, 1),
    "image_size": lambda n, v: _int(n, v, 1),
    "lr": _positive_float,
    "weight_decay": lambda n, v: number(0.0)(n, v),
    "time_budget_s": _positive_float,
    "val_fraction": _fraction,
    "label_smoothing": _fraction,
    "fast": _bool,
    "full": _bool,
    "device": _device,
    "dataset": _dataset,
    "data_dir": lambda n, v: _directory(n, v, must_exist=True),
    "output_dir": _directory,
}


def _injected_parameter_names() -> set[str] | None:
    """Names that papermill injected into this kernel (None outside papermill/IPython).

    papermill writes the values it is given into a new cell that starts with
    "# Parameters" right after the `parameters` cell. It only *warns* about names the
    notebook does not declare, so we read that cell back from IPython's input history.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of jupyter
        return None
    shell = get_ipython()
    if shell is None:
        return None
    names: set[str] = set()
    for source in shell.user_ns.get("In", []):
        if not source.lstrip().startswith("# Parameters"):
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def check_params(
    rules: Mapping[str, Callable[[str, Any], Any]] | None = None,
    datasets: tuple[str, ...] | None = None,
    injected: set[str] | None = None,
    **params: Any,
) -> Params:
    """Validate a notebook's parameters and return them as `Params`.

    Every keyword is one parameter of the notebook. Known names (`seed`, `epochs`,
    `dataset`, `device`, `data_dir`, ...) are checked by the shared rules; `rules` adds or
    overrides rules for this notebook; `datasets` restricts which datasets are valid.
    A parameter that no rule covers is an error (so a new one cannot slip in unchecked: give
    it a rule with the factories here, `whole_number`, `number`, `boolean`, `one_of`,
    `list_of`, `optional`, `existing_path`, `text`). When run by papermill, a parameter
    name that the notebook does not declare (a typo such as ``-p epoch 3``) is an error.

    Raises ValueError naming the parameter, the bad value and what would be valid.
    """
    declared = set(params)
    unknown = (injected if injected is not None else _injected_parameter_names() or set()) - declared
    if unknown:
        parts = []
        for bad in sorted(unknown):
            hint = difflib.get_close_matches(bad, sorted(declared), n=1)
            parts.append(f"{bad!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        raise ValueError(
            f"unknown parameter {', '.join(parts)}: this notebook's parameters are "
            f"{', '.join(sorted(declared))}"
        )
    all_rules = dict(RULES)
    if datasets is not None:
        all_rules["dataset"] = lambda n, v: _dataset(n, v, tuple(datasets))
    all_rules.update(rules or {})
    unruled = sorted(name for name in params if name not in all_rules)
    if unruled:
        raise ValueError(
            f"parameter {', '.join(map(repr, unruled))} has no rule: pass one in "
            "check_params(rules={...}) (e.g. helpers.core.whole_number(1), one_of([...]), "
            "list_of(...)) so that a wrong value fails here with a clear message"
        )
    checked = Params()
    for name, value in params.items():
        checked[name] = all_rules[name](name, value)
    return checked


# --------------------------------------------------------------------------- formula checks


def check(name: str, ours: Any, ref: Any, tol: float = 1e-6, ref_name: str = "torch") -> float:
    """Assert that `ours` equals the reference `ref` in shape and to within `tol`; print it.

    Used after every formula the course implements by hand: the shapes must match exactly
    (no broadcasting: shape (3,) against (1,) fails), then the largest absolute difference
    must be below `tol`. Prints ``name   max |ours - torch| = 3.1e-07  ✓`` and returns it.
    """
    ours_a = ours.detach().cpu().numpy() if hasattr(ours, "detach") else np.asarray(ours)
    ref_a = ref.detach().cpu().numpy() if hasattr(ref, "detach") else np.asarray(ref)
    if ours_a.shape != ref_a.shape:
        raise AssertionError(f"{name}: shape {ours_a.shape} (ours) != {ref_a.shape} ({ref_name})")
    diff = np.abs(ours_a.astype(np.float64) - ref_a.astype(np.float64))
    d = float(diff.max()) if diff.size else 0.0
    if not d < tol:  # also catches NaN
        raise AssertionError(f"{name}: max |ours - {ref_name}| = {d:.1e} >= {tol}")
    print(f"{name:<28} max |ours - {ref_name}| = {d:.1e}  ✓")
    return d


# --------------------------------------------------------------------------- run report


@dataclass
class RunReport:
    """How a notebook run was produced; printed at the start and (with wall time) at the end."""

    device: torch.device
    seed: int
    torch_version: str = torch.__version__
    torchvision_version: str = ""
    python_version: str = platform.python_version()
    threads: int = field(default_factory=torch.get_num_threads)
    params: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        """Seconds since `setup` was called."""
        return time.perf_counter() - self.started

    def summary(self, final: bool = False) -> str:
        shown = {k: v for k, v in self.params.items() if k not in ("seed", "device")}
        lines = [
            f"device: {self.device} · threads: {self.threads} · seed: {self.seed}",
            f"python {self.python_version} · torch {self.torch_version} · "
            f"torchvision {self.torchvision_version}",
        ]
        if shown:
            lines.append("parameters: " + ", ".join(f"{k}={_short(v)}" for k, v in shown.items()))
        if final:
            lines.append(f"wall time: {self.elapsed():.1f} s")
        return "\n".join(lines)

    def finish(self) -> RunReport:
        """Print the final run report (parameters and wall time); call it in the last cell."""
        print("Run report\n" + self.summary(final=True))
        return self

    def __repr__(self) -> str:
        return self.summary()


def _short(value: Any) -> str:
    if isinstance(value, Path):
        return repr(value.name or str(value))
    return repr(value)


def _torchvision_version() -> str:
    """torchvision's version without importing it (its import pulls in torch._dynamo: seconds)."""
    import importlib.util
    import re
    import sys
    from importlib import metadata

    if "torchvision" in sys.modules:
        return sys.modules["torchvision"].__version__
    spec = importlib.util.find_spec("torchvision")
    if spec is None:
        return "not installed"
    try:  # version.py carries the local label (e.g. +cpu) that the package metadata may lack
        text = (Path(spec.origin).parent / "version.py").read_text()
        return re.search(r"__version__\s*=\s*['\"]([^'\"]+)", text).group(1)
    except (OSError, AttributeError, TypeError):
        return metadata.version("torchvision")


def setup(
    params: Mapping[str, Any] | None = None,
    *,
    seed: int | None = None,
    device: str | torch.device | None = None,
    style: bool = True,
    quiet: bool = False,
) -> RunReport:
    """Seed everything, resolve the device, set the book's plot style, print a run report.

    `params` (from `check_params`) supplies `seed` and `device` unless given explicitly, and
    `threads` (if present) sets torch's CPU thread count.
    Returns the `RunReport`; its `finish()` prints the wall time at the end of a notebook.
    """
    params = dict(params or {})
    seed = int(seed if seed is not None else params.get("seed", 0))
    dev = resolve_device(device if device is not None else params.get("device", "auto"))
    if params.get("threads"):  # a notebook's `threads` parameter: torch's CPU thread count
        torch.set_num_threads(int(params["threads"]))
    seed_everything(seed)
    if style:
        set_style()
    report = RunReport(device=dev, seed=seed, torchvision_version=_torchvision_version(), params=params)
    if not quiet:
        print(report.summary())
    return report
