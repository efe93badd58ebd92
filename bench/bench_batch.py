"""Batch transform: `mlexp mode=predict` vs a plain chunked pyarrow + scikit-learn loop, rows/s and peak RSS.

Generates a 20-column numeric table of --rows rows (written in 1M-row pieces, so generating it never
holds it in memory), trains a random forest on 20,000 labelled rows of the same distribution with
mlexp, then predicts the big table both ways, one after the other, as fresh processes: mlexp with
`mode.chunk_rows`, and `plain` (the same skops pipeline, pyarrow batches of the same size,
predict_proba, a ParquetWriter). Peak RSS is each child's ru_maxrss.

Usage: python bench/bench_batch.py [--rows 10000000] [--chunk-rows 100000] [--trees 50] [--format parquet|csv] [--repeats 2]
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLAIN = """
import sys, numpy as np, pyarrow as pa, pyarrow.parquet as pq, pyarrow.csv as pacsv, skops.io as sio
model_file, source, output, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
model = sio.load(model_file, trusted=sio.get_untrusted_types(file=model_file))
if source.endswith(".csv"):
    batches = pacsv.open_csv(source, read_options=pacsv.ReadOptions(block_size=chunk * 200))
else:
    batches = pq.ParquetFile(source).iter_batches(batch_size=chunk)
writer = None
for batch in batches:
    proba = model.predict_proba(batch.to_pandas())
    table = pa.table({"prediction": proba.argmax(axis=1), "proba_0": proba[:, 0], "proba_1": proba[:, 1]})
    writer = writer or pq.ParquetWriter(output, table.schema)
    writer.write_table(table)
writer.close()
"""


def _table(path: Path, rows: int, seed: int, with_target: bool, kind: str) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    weights = np.linspace(-1.0, 1.0, 20)
    writer = None
    for start in range(0, rows, 1_000_000):
        n = min(1_000_000, rows - start)
        X = rng.normal(size=(n, 20)).astype(np.float32)
        columns = {f"f{i}": X[:, i] for i in range(20)}
        if with_target:
            columns["y"] = ((X @ weights + 0.5 * rng.normal(size=n)) > 0).astype(np.int64)
        table = pa.table(columns)
        if kind == "csv":
            writer = writer or pacsv.CSVWriter(str(path), table.schema)
        else:
            writer = writer or pq.ParquetWriter(str(path), table.schema)
        writer.write_table(table)
    writer.close()


def _child(command, cwd: Path) -> tuple:
    """Wall seconds and peak RSS (MiB) of one fresh child process (wait4 gives that child's own rusage)."""
    import os

    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(map(str, command))} failed:\n{process.stderr.read().decode()[-3000:]}")
    return seconds, usage.ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--trees", type=int, default=50)
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _table(work / "train.csv", 20_000, 0, True, "csv")
        subprocess.run([sys.executable, "-m", "mlexp", "data=csv", "data.path=train.csv", "data.target=y",
                        "model=random_forest", f"model.n_estimators={args.trees}", "splitter.n_splits=2",
                        "report=false", "hydra.run.dir=train"], cwd=work, check=True, capture_output=True)
        source = work / f"big.{args.format}"
        start = time.perf_counter()
        _table(source, args.rows, 1, False, args.format)
        made = time.perf_counter() - start
        size = source.stat().st_size / 2**20
        plain_out = work / "plain.parquet"
        runs = {"mlexp": [], "plain": []}
        for repeat in range(args.repeats):  # interleaved, so drifting machine load hits both alike
            runs["plain"].append(_child([sys.executable, "-c", PLAIN, str(work / "train" / "model.skops"),
                                         str(source), str(plain_out), str(args.chunk_rows)], work))
            runs["mlexp"].append(_child([sys.executable, "-m", "mlexp", "mode=predict", "mode.run_dir=train",
                                         f"mode.input={source}", "mode.output=out.parquet", "mode.overwrite=true",
                                         f"mode.chunk_rows={args.chunk_rows}", f"hydra.run.dir=pred{repeat}"], work))
        ours, theirs = (tuple(statistics.median(v) for v in zip(*runs[k])) for k in ("mlexp", "plain"))
        import pyarrow.parquet as pq

        rows_out = pq.ParquetFile(work / "pred0" / "out.parquet").metadata.num_rows
        assert rows_out == args.rows == pq.ParquetFile(plain_out).metadata.num_rows
        same = pq.read_table(work / "pred0" / "out.parquet", columns=["proba_1"]).column(0).to_numpy()[:100_000]
        plain = pq.read_table(plain_out, columns=["proba_1"]).column(0).to_numpy()[:100_000]
    import os

    print(f"{args.rows:,} rows x 20 columns ({args.format}, {size:.0f} MiB, generated in {made:.0f} s), "
          f"random forest {args.trees} trees, chunks of {args.chunk_rows:,} rows, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"medians of {args.repeats} interleaved runs each")
    print(f"{'':<6} {'seconds':>8} {'rows/s':>10} {'peak RSS MiB':>13}")
    for name, (seconds, rss) in (("mlexp", ours), ("plain", theirs)):
        print(f"{name:<6} {seconds:>8.1f} {args.rows / seconds:>10,.0f} {rss:>13.0f}")
    print(f"ratio mlexp/plain wall time {ours[0] / theirs[0]:.3f}; same probabilities: {bool((same == plain).all())}")


if __name__ == "__main__":
    main()
