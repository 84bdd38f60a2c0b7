"""Benchmark: training fast on a CPU. Recipe vs goals, an ablation, data-pipeline throughput, torch.compile.

    python bench/pipeline.py                  # full run (about 10 minutes on an idle 2-core machine)
    python bench/pipeline.py --quick --out /tmp/bench   # a smoke run (under a minute): tiny subsets, 1 seed
    python bench/pipeline.py --parts recipe --datasets mnist --seeds 3

Parts (`--parts`, comma list; default all):

- recipe: each dataset trained with its recipe (`RECIPES`: a `helpers.fastnet.FastNet` and
  `helpers.fit` settings) for `--seeds` seeds. Reported: median and min-max of the test
  accuracy and of the training time (the `fit` call only: no data loading, no evaluation),
  the goal, and whether the medians meet it.
- ablation: the Fashion-MNIST recipe with each piece removed (or replaced) in turn, on a
  shorter budget (`--ablation-per-class` training images per class, same epochs), same seeds.
- throughput: training images per second of the textbook loop (torchvision's per-sample
  `ToTensor()` + `Normalize()` and a `DataLoader`) vs `helpers.fit`'s in-memory uint8 pipeline,
  same model, optimiser and batch size; median and min-max of `--repeats` repeats.
- compile: `torch.compile` of the Fashion-MNIST model: compile time, steady-state images per
  second compiled vs eager, and how many images it takes to pay the compile time back.

Every part runs on the CPU with `--threads` intra-op threads, and again on CUDA when a GPU is
present. The load average is read before and after each part. Data: `--data-dir`, else
`$COURSE_DATA_DIR`, else the repository's `data/`. Results: `<out>/<name>.json` and `<name>.md`,
both written entirely by this script (default `bench/results/pipeline.{json,md}`).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import helpers
from helpers.fastnet import build_fastnet

RESULTS = Path(__file__).resolve().parent / "results"

#: The recipe per dataset: FastNet's arguments, `helpers.fit`'s arguments, test-time flip,
#: and the goal (median test accuracy within a median training-time budget, 2 threads, idle machine).
RECIPES: dict[str, dict] = {
    "fashion_mnist": dict(
        net=dict(stem=16, widths=(24, 48, 96), depth=2),
        fit=dict(epochs=3, batch_size=256, lr=1e-2, optimizer="adamw", label_smoothing=0.1,
                 augment=True, aug_pad=2, aug_flip=True, ema=0.99),
        flip=True, goal_acc=0.92, budget_s=60, stretch=(0.93, 90)),
    "mnist": dict(
        net=dict(stem=16, widths=(24, 48, 96), depth=2),
        fit=dict(epochs=2, batch_size=256, lr=1e-2, optimizer="adamw", label_smoothing=0.1,
                 augment=True, aug_pad=2, aug_flip=False, ema=0.99),
        flip=False, goal_acc=0.994, budget_s=30, stretch=None),
    "digits": dict(
        net=dict(stem=16, widths=(24, 48, 96), depth=2),
        fit=dict(epochs=20, batch_size=64, lr=1e-2, optimizer="adamw", label_smoothing=0.1,
                 augment=True, aug_pad=1, aug_flip=False, ema=0.99),
        flip=False, goal_acc=0.99, budget_s=5, stretch=None),
}


def _without(key: str, value) -> Callable[[dict], dict]:
    """A change of the recipe: `fit` argument (or `net.` argument, or `flip`) `key` set to `value`."""
    def change(recipe: dict) -> dict:
        r = {**recipe, "net": dict(recipe["net"]), "fit": dict(recipe["fit"])}
        if key.startswith("net."):
            r["net"][key[4:]] = value
        elif key in ("flip", "threads", "model"):
            r[key] = value
        else:
            r["fit"][key] = value
        return r
    return change


#: Ablation: (piece of the recipe, what replaces it, the change). Removed one at a time.
PIECES: list[tuple[str, str, Callable[[dict], dict]]] = [
    ("FastNet (pool early, 16-24-48-96)", "small VGG (16, 32, 64), the previous recipe's model",
     _without("model", ("vgg", {"widths": (16, 32, 64)}))),
    ("two convs per block", "one conv per block (net depth=1)", _without("net.depth", 1)),
    ("GELU", "ReLU (no erf: cheaper on a CPU)", _without("net.activation", "relu")),
    ("channels-last", "contiguous NCHW (channels_last=False)", _without("channels_last", False)),
    ("BN momentum 0.4, frozen scale", "PyTorch's BN defaults (momentum 0.1, trained scale)",
     lambda r: _without("net.bn_train_weight", True)(_without("net.bn_momentum", 0.1)(r))),
    ("AdamW", "SGD-Nesterov (momentum 0.9, lr 0.1)",
     lambda r: _without("lr", 0.1)(_without("optimizer", "sgd")(r))),
    ("one-cycle warm-up", "cosine annealing without warm-up", _without("schedule", "cosine")),
    ("label smoothing 0.1", "none", _without("label_smoothing", 0.0)),
    ("weight EMA 0.99", "the raw weights", _without("ema", None)),
    ("flip + crop augmentation", "none", _without("augment", False)),
    ("test-time flip", "one view", _without("flip", False)),
    ("batch size 256", "batch size 64", _without("batch_size", 64)),
    ("batch size 256", "batch size 512 (fewer, larger steps)", _without("batch_size", 512)),
    ("2 threads", "1 thread", _without("threads", 1)),
]


# --------------------------------------------------------------------------- measuring


def stats(values: list[float], digits: int = 4) -> dict:
    """Median, min and max of a list (and the values), rounded."""
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits), "values": [round(v, digits) for v in values]}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def build(recipe: dict, data: helpers.ImageData) -> nn.Module:
    """The recipe's model (FastNet, or the course model named by an ablation)."""
    if "model" in recipe:
        name, kwargs = recipe["model"]
        return helpers.build_model(name, data.shape, data.n_classes, **kwargs)
    return build_fastnet(data.shape, data.n_classes, **recipe["net"])


def train_and_test(recipe: dict, train: helpers.ImageData, test: helpers.ImageData, device: torch.device,
                   seed: int, threads: int) -> tuple[float, float]:
    """(test accuracy, training seconds) of one seeded run of a recipe."""
    torch.set_num_threads(recipe.get("threads", threads))
    try:
        torch.manual_seed(seed)
        model = build(recipe, train)
        _sync(device)
        start = time.perf_counter()
        helpers.fit(model, train, val_fraction=0.0, device=device, seed=seed, verbose=False, progress=False,
                    **recipe["fit"])
        _sync(device)
        seconds = time.perf_counter() - start
        acc = helpers.evaluate(model, test, flip=recipe["flip"])["acc"]
    finally:
        torch.set_num_threads(threads)
    return acc, seconds


def test_subset(data: helpers.ImageData, n: int | None, device: torch.device) -> helpers.ImageData:
    """The data on `device` with every k-th test image only (n of them; None: the whole test split)."""
    data = data.to(device)
    if not n or n >= len(data.y_test):
        return data
    keep = torch.arange(0, len(data.y_test), len(data.y_test) // n, device=device)[:n]
    return dataclasses.replace(data, x_test=data.x_test[keep], y_test=data.y_test[keep])


def recipe_part(datasets: dict[str, helpers.ImageData], device: torch.device, seeds: list[int], threads: int,
                quick: bool) -> list[dict]:
    rows = []
    for name, data in datasets.items():
        recipe = RECIPES[name]
        if quick:  # a smoke run: 1 epoch (digits: 2) on 50 images per class, 1,000 test images
            recipe = _without("epochs", 2 if name == "digits" else 1)(recipe)
        train = data.subset(50, recompute_stats=False) if quick and name != "digits" else data
        test = test_subset(data, 1000 if quick else None, device)
        runs = []
        for seed in seeds:
            acc, seconds = train_and_test(recipe, train.to(device), test, device, seed, threads)
            runs.append((acc, seconds))
            print(f"[recipe] {device.type} {name} seed {seed}: test acc {acc:.4f}, trained in {seconds:.1f} s",
                  flush=True)
        acc, sec = stats([a for a, _ in runs]), stats([s for _, s in runs], 2)
        stretch = recipe["stretch"]
        rows.append({
            "device": device.type, "dataset": name, "net": recipe["net"], "fit": recipe["fit"],
            "test_flip": recipe["flip"], "params": helpers.count_parameters(build(recipe, data)),
            "train_images": len(train.y_train), "test_images": len(test.y_test), "seeds": seeds,
            "acc": acc, "train_s": sec, "goal_acc": recipe["goal_acc"], "budget_s": recipe["budget_s"],
            "met": bool(acc["median"] >= recipe["goal_acc"] and sec["median"] <= recipe["budget_s"]),
            "stretch": stretch, "stretch_met": bool(stretch and acc["median"] >= stretch[0]
                                                    and sec["median"] <= stretch[1]),
            "quick": quick})
    return rows


def ablation_part(name: str, data: helpers.ImageData, device: torch.device, seeds: list[int], threads: int,
                  per_class: int | None, test_images: int | None, epochs: int | None = None) -> list[dict]:
    """The `name` recipe with each piece removed in turn (pieces the recipe does not use are skipped)."""
    base = _without("epochs", epochs)(RECIPES[name]) if epochs else RECIPES[name]
    train = (data.subset(per_class, recompute_stats=False) if per_class else data).to(device)
    test = test_subset(data, test_images, device)
    conditions = [("full recipe", "-", base)] + [(p, r, change(base)) for p, r, change in PIECES
                                                 if change(base) != base]
    if device.type != "cpu" or threads == 1:  # a CPU setting, and only a change when running on 2 threads
        conditions = [c for c in conditions if c[0] != "2 threads"]
    rows, reference = [], None
    for piece, replacement, recipe in conditions:
        runs = [train_and_test(recipe, train, test, device, s, threads) for s in seeds]
        acc, sec = stats([a for a, _ in runs]), stats([s for _, s in runs], 2)
        reference = reference or (acc["median"], sec["median"])
        rows.append({"device": device.type, "dataset": name, "removed": piece, "replaced_by": replacement,
                     "acc": acc, "train_s": sec, "d_acc": round(acc["median"] - reference[0], 4),
                     "time_ratio": round(sec["median"] / reference[1], 2), "train_images": len(train.y_train),
                     "epochs": recipe["fit"]["epochs"], "test_images": len(test.y_test), "seeds": seeds})
        print(f"[ablation] {device.type} {name} without {piece:<34} acc {acc['median']:.4f} "
              f"[{acc['min']:.4f}, {acc['max']:.4f}] · {sec['median']:.1f} s", flush=True)
    return rows


def textbook_seconds(data_root: Path, model: nn.Module, n_images: int, batch_size: int, device: torch.device,
                     workers: int) -> float:
    """Seconds to train on `n_images` through torchvision's per-sample transforms and a DataLoader."""
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.2860,), (0.3530,))])
    subset = torch.utils.data.Subset(datasets.FashionMNIST(str(data_root), train=True, transform=tf),
                                     range(n_images))
    loader = torch.utils.data.DataLoader(subset, batch_size=batch_size, shuffle=True, num_workers=workers)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    model.to(device).train()
    start = time.perf_counter()
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    _sync(device)
    return time.perf_counter() - start


def ours_seconds(data: helpers.ImageData, model: nn.Module, batch_size: int, device: torch.device) -> float:
    """Seconds to train one epoch over `data` with helpers.fit (same optimiser, constant lr)."""
    _sync(device)
    start = time.perf_counter()
    helpers.fit(model, data, epochs=1, batch_size=batch_size, lr=1e-3, schedule="constant", val_fraction=0.0,
                device=device, verbose=False, progress=False)
    _sync(device)
    return time.perf_counter() - start


def _model(name: str) -> nn.Module:
    if name == "fastnet":
        return build_fastnet((1, 28, 28), 10, **RECIPES["fashion_mnist"]["net"])
    return helpers.build_model(name, (1, 28, 28), 10)


def throughput_part(data_root: Path, fmnist: helpers.ImageData, device: torch.device, n_images: int,
                    models: list[str], workers: list[int], repeats: int, batch_size: int = 128) -> list[dict]:
    rows = []
    sub = fmnist.subset(n_images // fmnist.n_classes, recompute_stats=False).to(device)
    n = len(sub.y_train)
    for name in models:
        ours = []
        for r in range(repeats):
            torch.manual_seed(r)
            ours.append(n / ours_seconds(sub, _model(name), batch_size, device))
        for w in workers:
            book = []
            for r in range(repeats):
                torch.manual_seed(r)
                book.append(n / textbook_seconds(data_root, _model(name), n, batch_size, device, w))
            o, b = stats(ours, 1), stats(book, 1)
            rows.append({"device": device.type, "model": name, "batch_size": batch_size, "images": n,
                         "repeats": repeats, "textbook_workers": w, "textbook_img_s": b, "ours_img_s": o,
                         "ratio": round(o["median"] / b["median"], 2)})
            print(f"[throughput] {device.type} {name:>7} workers={w}: textbook {b['median']:7.0f} img/s · "
                  f"ours {o['median']:7.0f} img/s · ratio {o['median'] / b['median']:.2f}x", flush=True)
    return rows


def compile_part(fmnist: helpers.ImageData, device: torch.device, repeats: int, steps: int = 20,
                 batch_size: int = 256) -> dict:
    """torch.compile on the recipe's model: compile seconds, steady img/s eager vs compiled, break-even."""
    x = helpers.data.normalize(fmnist.x_train[:batch_size], fmnist.mean, fmnist.std).to(device)
    x = x.contiguous(memory_format=torch.channels_last)
    y = fmnist.y_train[:batch_size].to(device)

    def rate(model: nn.Module) -> tuple[float, float]:
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)

        def step() -> None:
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        _sync(device)
        start = time.perf_counter()
        step()  # the first step (compiles, when compiled)
        _sync(device)
        first = time.perf_counter() - start
        rates = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(steps):
                step()
            _sync(device)
            rates.append(steps * batch_size / (time.perf_counter() - start))
        return first, statistics.median(rates), rates

    torch.manual_seed(0)
    eager = _model("fastnet").to(device).to(memory_format=torch.channels_last).train()
    first_eager, eager_rate, eager_rates = rate(eager)
    torch.manual_seed(0)
    try:
        compiled = torch.compile(_model("fastnet").to(device).to(memory_format=torch.channels_last).train())
        first_compiled, compiled_rate, compiled_rates = rate(compiled)
    except Exception as err:  # noqa: BLE001 - no compiler toolchain: report it, do not fail the benchmark
        return {"device": device.type, "error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
    compile_s = first_compiled - first_eager
    gain = 1 / eager_rate - 1 / compiled_rate  # seconds saved per image
    row = {"device": device.type, "compile_s": round(compile_s, 1), "eager_img_s": stats(eager_rates, 1),
           "compiled_img_s": stats(compiled_rates, 1), "speedup": round(compiled_rate / eager_rate, 2),
           "break_even_images": round(compile_s / gain) if gain > 0 else None}
    print(f"[compile] {device.type}: compile {compile_s:.1f} s · eager {eager_rate:.0f} img/s · compiled "
          f"{compiled_rate:.0f} img/s · break-even {row['break_even_images']} images", flush=True)
    return row


# --------------------------------------------------------------------------- report


def conditions(threads: int, argv: list[str]) -> dict:
    """Machine, CPU model, threads, library versions, time and command of this run."""
    import numpy
    import torchvision

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu_model": cpu, "machine": f"{platform.system()} {platform.machine()}", "logical_cpus": os.cpu_count(),
            "torch_threads": threads, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": numpy.__version__, "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "started_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "python bench/pipeline.py " + " ".join(argv), "load": {}}


def _range(s: dict, fmt: str) -> str:
    return f"{s['median']:{fmt}} [{s['min']:{fmt}}–{s['max']:{fmt}}]"


def markdown(result: dict) -> str:
    c = result["conditions"]
    load = "; ".join(f"{part}: {v['before']:.2f} → {v['after']:.2f}" for part, v in c["load"].items())
    lines = ["# Training fast on a CPU: benchmark", "",
             f"Written by `bench/pipeline.py`; command: `{c['command']}`{' (a smoke run)' if result['quick'] else ''}.",
             "", "## Conditions", "",
             f"- CPU: {c['cpu_model']} ({c['logical_cpus']} logical CPUs, {c['machine']}); "
             f"torch threads: {c['torch_threads']}; GPU: {c['gpu'] or 'none'}",
             f"- torch {c['torch']}, torchvision {c['torchvision']}, numpy {c['numpy']}, python {c['python']}; "
             f"started {c['started_utc']}",
             f"- 1-minute load average before → after each part: {load or 'n/a'}",
             "- Figures: median [min–max] over seeds (accuracy) or repeats (throughput). Training time: the "
             "`helpers.fit` call only (no data loading, no evaluation).", ""]
    if result["recipe"]:
        lines += ["## The recipe against its goals", "",
                  "| device | dataset | epochs | train images | test images | test acc | train s | goal | met | stretch |",
                  "|---|---|---:|---:|---:|---:|---:|---|---|---|"]
        for r in result["recipe"]:
            stretch = (f"≥ {r['stretch'][0]:.0%} in ≤ {r['stretch'][1]} s: {'met' if r['stretch_met'] else 'not met'}"
                       if r["stretch"] else "-")
            lines.append(f"| {r['device']} | {r['dataset']} | {r['fit']['epochs']} | {r['train_images']:,} | "
                         f"{r['test_images']:,} | "
                         f"{_range(r['acc'], '.2%')} | {_range(r['train_s'], '.1f')} | ≥ {r['goal_acc']:.1%} in ≤ "
                         f"{r['budget_s']} s | {'**met**' if r['met'] else 'not met'} | {stretch} |")
        r0 = result["recipe"][0]
        lines += ["", f"Recipe ({r0['dataset']}): FastNet {r0['net']} ({r0['params']:,} parameters), "
                  f"`helpers.fit({', '.join(f'{k}={v!r}' for k, v in r0['fit'].items())})`, test-time flip: "
                  f"{r0['test_flip']}; seeds {r0['seeds']}.", ""]
    if result["ablation"]:
        a0 = result["ablation"][0]
        lines += [f"## Ablation: each piece of the {a0['dataset']} recipe removed in turn", "",
                  f"{a0['train_images']:,} training images, {a0['epochs']} epochs, "
                  f"{a0['test_images']:,} test images, seeds {a0['seeds']}. Δ acc: median minus the full "
                  "recipe's median; time ×: median training time relative to the full recipe.", "",
                  "| device | without | replaced by | test acc | Δ acc | train s | time × |",
                  "|---|---|---|---:|---:|---:|---:|"]
        lines += [f"| {a['device']} | {a['removed']} | {a['replaced_by']} | {_range(a['acc'], '.2%')} | "
                  f"{a['d_acc']:+.2%} | {_range(a['train_s'], '.1f')} | {a['time_ratio']:.2f} |"
                  for a in result["ablation"]]
        lines.append("")
    if result["throughput"]:
        lines += ["## Throughput: textbook DataLoader loop vs in-memory pipeline (Fashion-MNIST, training img/s)",
                  "", "| device | model | batch | images | repeats | textbook workers | textbook img/s | ours img/s | ratio |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['device']} | {r['model']} | {r['batch_size']} | {r['images']:,} | {r['repeats']} | "
                  f"{r['textbook_workers']} | {_range(r['textbook_img_s'], '.0f')} | {_range(r['ours_img_s'], '.0f')} | "
                  f"**{r['ratio']:.2f}×** |" for r in result["throughput"]]
        lines.append("")
    if result["compile"]:
        lines += ["## torch.compile on the recipe's model (training steps, batch 256)", "",
                  "| device | compile s | eager img/s | compiled img/s | speed-up | break-even images |",
                  "|---|---:|---:|---:|---:|---:|"]
        for r in result["compile"]:
            if "error" in r:
                lines.append(f"| {r['device']} | failed: {r['error']} | | | | |")
            else:
                lines.append(f"| {r['device']} | {r['compile_s']:.1f} | {_range(r['eager_img_s'], '.0f')} | "
                             f"{_range(r['compiled_img_s'], '.0f')} | {r['speedup']:.2f}× | "
                             f"{r['break_even_images'] if r['break_even_images'] is not None else 'never'} |")
        lines.append("")
    lines += [f"GPU: {result['gpu']}", ""]
    return "\n".join(lines)


def _fashion_root(data_dir: Path, tmp: Path) -> Path:
    """A writable copy of Fashion-MNIST's .gz files that torchvision extracts (offline, checksums verified)."""
    from torchvision import datasets

    (tmp / "FashionMNIST" / "raw").mkdir(parents=True)
    for f in (Path(data_dir) / "FashionMNIST" / "raw").glob("*.gz"):
        shutil.copyfile(f, tmp / "FashionMNIST" / "raw" / f.name)
    datasets.FashionMNIST(str(tmp), train=True, download=True)
    return tmp


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small subsets, 1 seed, 1 epoch")
    parser.add_argument("--parts", default="recipe,ablation,throughput,compile",
                        help="comma list of recipe, ablation, throughput, compile")
    parser.add_argument("--datasets", default="fashion_mnist,mnist,digits", help="datasets of the recipe part")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per recipe and ablation row (median reported)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per throughput figure (median reported)")
    parser.add_argument("--images", type=int, default=None, help="training images timed in the throughput part")
    parser.add_argument("--ablation-dataset", default="fashion_mnist", choices=sorted(RECIPES),
                        help="whose recipe the ablation takes apart")
    parser.add_argument("--ablation-per-class", type=int, default=400,
                        help="training images per class of the ablation, a shorter budget (0: all)")
    parser.add_argument("--ablation-test", type=int, default=None, help="test images of the ablation (default: all)")
    parser.add_argument("--models", default="mlp,lenet5,fastnet", help="models of the throughput part")
    parser.add_argument("--workers", default="0,2", help="DataLoader workers of the textbook loop")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--no-gpu", action="store_true", help="CPU only, even when CUDA is present")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder with MNIST/ and FashionMNIST/raw/*.gz")
    parser.add_argument("--name", default=None, help="file stem of the results (default: pipeline[_quick])")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for <name>.json and <name>.md")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    unknown = parts - {"recipe", "ablation", "throughput", "compile"}
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; valid: recipe, ablation, throughput, compile")
    torch.set_num_threads(args.threads)
    data_dir = args.data_dir or helpers.default_data_dir()
    quick = args.quick
    seeds = [0] if quick else list(range(args.seeds))
    repeats = args.repeats
    n_images = args.images or (1000 if quick else 5000)
    workers = [0] if quick else [int(w) for w in args.workers.split(",")]
    devices = [torch.device("cpu")]
    if torch.cuda.is_available() and not args.no_gpu:
        devices.append(torch.device("cuda"))
    result = {"conditions": conditions(args.threads, argv), "quick": quick, "recipe": [], "ablation": [],
              "throughput": [], "compile": [],
              "gpu": torch.cuda.get_device_name(0) if len(devices) > 1 else
              "no CUDA GPU on this machine: GPU rows skipped" if not torch.cuda.is_available() else "skipped (--no-gpu)"}
    fmnist = helpers.load_dataset("fashion_mnist", data_dir=data_dir, download=False)
    def load(name: str) -> helpers.ImageData:
        return fmnist if name == "fashion_mnist" else helpers.load_dataset(name, data_dir=data_dir, download=False)

    datasets = {n: load(n) for n in args.datasets.split(",")}
    ablation_name = "digits" if quick else args.ablation_dataset  # smoke run: 200 digits, 2 epochs
    ablation_data = load(ablation_name)

    def measured(part: str, device: torch.device, fn: Callable[[], list | dict]) -> None:
        before = os.getloadavg()[0]
        print(f"[{part}] {device.type}: starting (load average {before:.2f})", flush=True)
        out = fn()
        key = f"{part} ({device.type})"
        result["conditions"]["load"][key] = {"before": round(before, 2), "after": round(os.getloadavg()[0], 2)}
        result[part] += out if isinstance(out, list) else [out]

    with tempfile.TemporaryDirectory() as tmp:
        tv_root = _fashion_root(Path(data_dir), Path(tmp)) if "throughput" in parts else None
        for device in devices:
            if "recipe" in parts:
                measured("recipe", device, lambda d=device: recipe_part(datasets, d, seeds, args.threads, quick))
            if "ablation" in parts:
                measured("ablation", device, lambda d=device: ablation_part(
                    ablation_name, ablation_data, d, seeds, args.threads,
                    20 if quick else args.ablation_per_class, None if quick else args.ablation_test,
                    2 if quick else None))
            if "throughput" in parts:
                measured("throughput", device, lambda d=device: throughput_part(
                    tv_root, fmnist, d, n_images, args.models.split(","), workers, repeats))
            if "compile" in parts and not quick:  # compiling alone takes longer than a smoke run
                measured("compile", device, lambda d=device: compile_part(fmnist, d, repeats))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.name or ("pipeline_quick" if quick else "pipeline")
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
