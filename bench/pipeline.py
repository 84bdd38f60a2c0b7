"""Benchmark: the textbook data pipeline vs the course's in-memory pipeline, and accuracy in a budget.

    python bench/pipeline.py                 # full run (several minutes on 2 CPU cores)
    python bench/pipeline.py --quick         # a smoke run: small subsets, 1 seed
    python bench/pipeline.py --parts throughput --threads 2

Part 1 (throughput): the same model, optimizer and batch size trained for the same number of
images (a) the textbook way: torchvision `FashionMNIST` with `ToTensor()` + `Normalize()` per
sample and a `DataLoader`, and (b) with `helpers.fit` (the whole set as one uint8 tensor on the
device, batched normalisation). Images per second of each and the ratio.

Part 2 (accuracy in a budget): Fashion-MNIST and MNIST (goal: >= 92.0 % / >= 99.2 % test
accuracy in <= 90 s of training) and digits (>= 99.0 % in <= 15 s), median over seeds.

Part 3: parts 1-2 again on a CUDA GPU when there is one (skipped cleanly otherwise).

Data: `--data-dir`, else `$COURSE_DATA_DIR`, else the repository's `data/` (the official .gz
files in torchvision's layout). Results: `bench/results/pipeline.json` and `pipeline.md`.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import helpers

RESULTS = Path(__file__).resolve().parent / "results"

#: Per dataset: the model and recipe of the accuracy run, and the goal.
RECIPES = {
    "fashion_mnist": dict(model="vgg", kwargs={"widths": (16, 32, 64)}, epochs=5, batch_size=256, lr=6e-3,
                          augment=True, aug_pad=2, aug_flip=True, label_smoothing=0.1, goal_acc=0.92, budget_s=90),
    "mnist": dict(model="lenet5", kwargs={}, epochs=5, batch_size=128, lr=8e-3,
                  augment=True, aug_pad=2, aug_flip=False, label_smoothing=0.0, goal_acc=0.992, budget_s=90),
    "digits": dict(model="vgg", kwargs={"widths": (16, 32, 64)}, epochs=20, batch_size=64, lr=6e-3,
                   augment=True, aug_pad=1, aug_flip=False, label_smoothing=0.1, goal_acc=0.99, budget_s=15),
}


def textbook_images_per_second(data_root: Path, model: nn.Module, n_images: int, batch_size: int,
                               device: torch.device, workers: int) -> float:
    """Train on `n_images` through torchvision's per-sample transforms and a DataLoader."""
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.2860,), (0.3530,))])
    train = datasets.FashionMNIST(str(data_root), train=True, transform=tf)
    subset = torch.utils.data.Subset(train, range(n_images))
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
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n_images / (time.perf_counter() - start)


def ours_images_per_second(data: helpers.ImageData, model: nn.Module, n_images: int, batch_size: int,
                           device: torch.device) -> float:
    """Train on `n_images` with helpers.fit (in-memory uint8 tensor, batched normalisation)."""
    sub = data.subset(n_images // data.n_classes, recompute_stats=False)
    dev_data = sub.to(device)  # the one-off copy to the device is not part of an epoch
    start = time.perf_counter()
    helpers.fit(model, dev_data, epochs=1, batch_size=batch_size, lr=1e-3, schedule="constant",
                val_fraction=0.0, device=device, verbose=False, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(sub.y_train) / (time.perf_counter() - start)


def throughput(data_root: Path, fmnist: helpers.ImageData, device: torch.device, n_images: int,
               models: list[str], workers: list[int], batch_size: int = 128) -> list[dict]:
    rows = []
    for name in models:
        for w in workers:
            torch.manual_seed(0)
            tb = textbook_images_per_second(data_root, helpers.build_model(name, (1, 28, 28), 10), n_images,
                                            batch_size, device, w)
            torch.manual_seed(0)
            ours = ours_images_per_second(fmnist, helpers.build_model(name, (1, 28, 28), 10), n_images,
                                          batch_size, device)
            rows.append({"device": device.type, "model": name, "batch_size": batch_size, "images": n_images,
                         "textbook_workers": w, "textbook_img_s": round(tb, 1), "ours_img_s": round(ours, 1),
                         "ratio": round(ours / tb, 2)})
            print(f"[throughput] {device.type} {name:>7} workers={w}: textbook {tb:8.0f} img/s · "
                  f"ours {ours:8.0f} img/s · ratio {ours / tb:.2f}x", flush=True)
    return rows


def accuracy_in_budget(name: str, data: helpers.ImageData, device: torch.device, seeds: list[int],
                       quick: bool) -> dict:
    r = RECIPES[name]
    epochs = max(1, r["epochs"] // 4) if quick else r["epochs"]
    train = data.subset(100, recompute_stats=False) if quick and name != "digits" else data
    runs = []
    for seed in seeds:
        torch.manual_seed(seed)
        model = helpers.build_model(r["model"], data.shape, data.n_classes, **r["kwargs"])
        start = time.perf_counter()
        helpers.fit(model, train.to(device), epochs=epochs, batch_size=r["batch_size"], lr=r["lr"],
                    augment=r["augment"], aug_pad=r["aug_pad"], aug_flip=r["aug_flip"],
                    label_smoothing=r["label_smoothing"], val_fraction=0.0, device=device, seed=seed,
                    verbose=False, progress=False)
        seconds = time.perf_counter() - start
        acc = helpers.evaluate(model, data)["acc"]
        runs.append({"seed": seed, "acc": round(acc, 4), "train_s": round(seconds, 1)})
        print(f"[accuracy] {device.type} {name} seed {seed}: test acc {acc:.4f} in {seconds:.1f} s", flush=True)
    acc_med = statistics.median(x["acc"] for x in runs)
    s_med = statistics.median(x["train_s"] for x in runs)
    return {"device": device.type, "dataset": name, "model": r["model"], "model_kwargs": r["kwargs"],
            "epochs": epochs, "params": helpers.count_parameters(model), "quick": quick, "runs": runs,
            "median_acc": acc_med, "median_train_s": s_med, "goal_acc": r["goal_acc"], "budget_s": r["budget_s"],
            "met": bool(acc_med >= r["goal_acc"] and s_med <= r["budget_s"])}


def markdown(result: dict) -> str:
    lines = ["# Pipeline benchmark", "", f"Machine: {result['machine']}  ", f"Command: `{result['command']}`", ""]
    if result["throughput"]:
        lines += ["## Throughput: textbook loop vs in-memory pipeline (Fashion-MNIST, training images/s)", "",
                  "| device | model | batch | images | textbook workers | textbook img/s | ours img/s | ratio |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['device']} | {r['model']} | {r['batch_size']} | {r['images']} | {r['textbook_workers']} | "
                  f"{r['textbook_img_s']:.0f} | {r['ours_img_s']:.0f} | **{r['ratio']:.2f}×** |" for r in result["throughput"]]
        lines.append("")
    if result["accuracy"]:
        lines += ["## Accuracy in a time budget (median over seeds)", "",
                  "| device | dataset | model | epochs | median test acc | goal | median train s | budget s | met |",
                  "|---|---|---|---:|---:|---:|---:|---:|---|"]
        lines += [f"| {a['device']} | {a['dataset']} | {a['model']} {a['model_kwargs'].get('widths', '')} | "
                  f"{a['epochs']} | {a['median_acc']:.2%} | {a['goal_acc']:.1%} | {a['median_train_s']:.1f} | "
                  f"{a['budget_s']} | {'yes' if a['met'] else 'no'} |" for a in result["accuracy"]]
        lines.append("")
    lines += [f"GPU part: {result['gpu']}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small subsets, 1 seed, few epochs (a smoke run)")
    parser.add_argument("--parts", default="throughput,accuracy,gpu", help="comma list of throughput,accuracy,gpu")
    parser.add_argument("--datasets", default="fashion_mnist,mnist,digits", help="datasets of the accuracy part")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per accuracy run (median reported)")
    parser.add_argument("--images", type=int, default=None, help="training images timed in the throughput part")
    parser.add_argument("--models", default="mlp,lenet5", help="models of the throughput part (the data pipeline matters most for small models)")
    parser.add_argument("--workers", default="0,2", help="DataLoader workers of the textbook loop to try")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder with MNIST/ and FashionMNIST/raw/*.gz")
    parser.add_argument("--name", default=None, help="file stem of the results (default: pipeline[_quick])")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where pipeline.json and pipeline.md go")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    if args.threads:
        torch.set_num_threads(args.threads)
    data_dir = args.data_dir or helpers.default_data_dir()
    quick = args.quick
    seeds = [0] if quick else list(range(args.seeds))
    n_images = args.images or (6000 if quick else 30000)
    workers = [0] if quick else [int(w) for w in args.workers.split(",")]
    machine = (f"{platform.processor() or platform.machine()} · {torch.get_num_threads()} torch threads · "
               f"torch {torch.__version__} · python {platform.python_version()}")
    result = {"machine": machine, "command": "python bench/pipeline.py " + " ".join(argv or sys.argv[1:]),
              "quick": quick, "throughput": [], "accuracy": [], "gpu": "not run"}
    from torchvision import datasets

    fmnist = helpers.load_dataset("fashion_mnist", data_dir=data_dir, download=False)
    devices = [torch.device("cpu")]
    if "gpu" in parts:
        if torch.cuda.is_available():
            devices.append(torch.device("cuda"))
            result["gpu"] = torch.cuda.get_device_name(0)
        else:
            result["gpu"] = "skipped: no CUDA GPU on this machine"
            print("[gpu] skipped: no CUDA GPU on this machine")
    with tempfile.TemporaryDirectory() as tmp:  # torchvision extracts the .gz files: use a copy
        tv_root = Path(tmp)
        (tv_root / "FashionMNIST" / "raw").mkdir(parents=True)
        for f in (Path(data_dir) / "FashionMNIST" / "raw").glob("*.gz"):
            shutil.copyfile(f, tv_root / "FashionMNIST" / "raw" / f.name)  # writable copy (no permissions)
        datasets.FashionMNIST(str(tv_root), train=True, download=True)  # verifies and extracts, offline
        for device in devices:
            if "throughput" in parts:
                result["throughput"] += throughput(tv_root, fmnist, device, n_images, args.models.split(","),
                                                   workers)
            if "accuracy" in parts:
                for name in args.datasets.split(","):
                    data = fmnist if name == "fashion_mnist" else helpers.load_dataset(name, data_dir=data_dir,
                                                                                        download=False)
                    result["accuracy"].append(accuracy_in_budget(name, data, device, seeds, quick))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.name or ("pipeline_quick" if quick else "pipeline")
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
