"""Compression of the wide MLP on GSS wages: size, latency and ROC AUC per method, beside plain torch doing the same.

    python bench/bench_compress.py [--rows 6000] [--epochs 10] [--repeats 50]

1. A train run of model=mlp hidden_sizes=[256,256] on a GSS sample, then `mode=compress` with
   quantize (dynamic, static), prune (0.9, fine-tuned) and prune_structured (0.5): the weights
   file, the forward pass per row and per batch (the test rows, 1,000 at most), the test ROC AUC.
2. Side by side: plain torch (`torch.ao.quantization.quantize_dynamic` on the same fp32 module,
   `torch.save` of its state dict), timed the same way: what mlexp adds to the quantized model is
   nothing at inference (the ratio should be about 1).
All timings on one torch thread.
"""

import argparse
import contextlib
import io
import json
import logging
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CATEGORICAL = "data.roles.categorical=[occrecode,wrkstat,gender,educcat,maritalcat]"
METHODS = {
    "quantize dynamic": ["compress=quantize"],
    "quantize static": ["compress=quantize", "compress.approach=static"],
    "prune 0.9": ["compress=prune", "compress.sparsity=0.9", "compress.fine_tune_epochs=3"],
    "prune_structured 0.5": ["compress=prune_structured", "compress.sparsity=0.5", "compress.fine_tune_epochs=3"],
}


def compose(overrides):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from mlexp.schema import register

    register()
    with initialize_config_module(config_module="mlexp.conf", version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


def median_ms(call, repeats: int) -> float:
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    sys.path.insert(0, str(ROOT))
    import torch
    from omegaconf import OmegaConf

    from mlexp.data.loaders import gss_wages
    from mlexp.experiment import run
    from mlexp.neural.compress.mode import run_compress

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench-compress-") as temporary:
        work = Path(temporary)
        gss_wages().sample(args.rows, random_state=0).to_csv(work / "gss.csv", index=False)
        overrides = ["data=csv", f"data.path={work / 'gss.csv'}", "data.target=high_income", CATEGORICAL,
                     "data.dropna=true", "model=mlp", "model.hidden_sizes=[256,256]",
                     f"model.max_epochs={args.epochs}", "splitter=holdout", "instance.vcpus=1"]
        source = work / "source"
        with contextlib.redirect_stdout(io.StringIO()):
            run(compose(overrides), run_dir=source)
        (source / ".hydra").mkdir()
        OmegaConf.save(compose(overrides), source / ".hydra" / "config.yaml")
        print(f"{'method':<22} {'weights file':>14} {'size ratio':>10} {'fwd ms/row':>11} {'fwd ms/batch':>12} "
              f"{'roc_auc':>8} {'delta':>8}")
        before = None
        for name, extra in METHODS.items():
            out = work / name.replace(" ", "_")
            with contextlib.redirect_stdout(io.StringIO()):
                run_compress(compose(["mode=compress", f"compress.from={source}",
                                      f"compress.latency.repeats={args.repeats}", *extra]), run_dir=out)
            content = json.loads((out / "compress.json").read_text())
            if before is None:
                before = content["before"]
                print(f"{'fp32 (before)':<22} {before['model_bytes']:>14,} {'1.00':>10} "
                      f"{before['latency_ms']['forward_row']:>11.4f} {before['latency_ms']['forward_batch']:>12.4f} "
                      f"{before['metrics']['roc_auc']:>8.4f} {'':>8}")
            after = content["after"]
            print(f"{name:<22} {after['model_bytes']:>14,} {content['change']['size_ratio']:>10.2f} "
                  f"{after['latency_ms']['forward_row']:>11.4f} {after['latency_ms']['forward_batch']:>12.4f} "
                  f"{after['metrics']['roc_auc']:>8.4f} {content['change']['metrics']['roc_auc']:>+8.4f}")
        print(f"(batch: the {before['latency_ms']['batch_rows']} test rows, or 1,000 at most; one torch thread)")
        plain_side_by_side(source, work / "quantize_dynamic", args.repeats)


def plain_side_by_side(source: Path, compressed: Path, repeats: int) -> None:
    """The same quantization by hand with torch, and the forward pass of both, interleaved."""
    import torch
    from torch.ao.quantization import quantize_dynamic

    from mlexp.artifacts import load_model

    model, _ = load_model(source)
    ours, _ = load_model(compressed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = quantize_dynamic(model.steps[-1][1].module_, {torch.nn.Linear}, dtype=torch.qint8)
    buffer = io.BytesIO()
    torch.save(plain.state_dict(), buffer)
    rows = torch.randn(1000, plain[0].in_features)
    module = ours.steps[-1][1].module_
    timings = {"plain": [], "mlexp": []}
    with torch.inference_mode():
        for _ in range(5):  # interleaved rounds, so drifting load hits both alike
            timings["plain"].append(median_ms(lambda: plain(rows), repeats))
            timings["mlexp"].append(median_ms(lambda: module(rows), repeats))
    plain_ms, ours_ms = statistics.median(timings["plain"]), statistics.median(timings["mlexp"])
    print(f"\nplain torch quantize_dynamic: state dict {len(buffer.getvalue()):,} bytes, forward {plain_ms:.4f} ms "
          f"per 1000 rows; mlexp's quantized model {(compressed / 'model.pt').stat().st_size:,} bytes, "
          f"{ours_ms:.4f} ms; ratio mlexp/plain {ours_ms / plain_ms:.2f}")


if __name__ == "__main__":
    main()
