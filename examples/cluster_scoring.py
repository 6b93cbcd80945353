"""A partitioned parquet folder checked on Ray Data with a saved model: the same output as on one machine.

A CoTeachingFilter is fitted on a first batch of rows and saved; four daily partitions of new
rows (20 % wrong labels) are then scored on Ray, the model shipped to the workers as its saved
file. Here Ray runs on this machine; on a cluster, only the `ray.init` line changes.
"""

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import ray
from sklearn.datasets import make_classification

import labelclean
from labelclean.cluster import score_dataset
from labelclean.io import open_dataset

X, y = make_classification(n_samples=2400, n_features=8, n_informative=6, n_classes=3, class_sep=1.5, random_state=0)
names = np.array(["bird", "cat", "dog"])
columns = [f"f{j}" for j in range(8)]
frame = pd.DataFrame(X.astype(np.float32), columns=columns)
given = labelclean.make_noisy_labels(names[y], 0.2, random_state=0)  # 20 % wrong labels

with tempfile.TemporaryDirectory() as folder:
    folder = Path(folder)
    # A model fitted on the first 800 rows, saved to one file (no pickle).
    model = labelclean.CoTeachingFilter(estimator="network", random_state=0).fit(frame[:800], given[:800])
    model.save(folder / "model.pt")

    # The other 1,600 rows arrive as four daily parts: parts/day=1/part-0.parquet, ...
    for day, rows in enumerate(np.array_split(np.arange(800, 2400), 4), start=1):
        (folder / "parts" / f"day={day}").mkdir(parents=True)
        table = pa.Table.from_pandas(frame.iloc[rows], preserve_index=False).append_column(
            "label", pa.array(given[rows])
        )
        pq.write_table(table, folder / "parts" / f"day={day}" / "part-0.parquet")

    ray.init(num_cpus=2, include_dashboard=False)  # on a cluster: ray.init(address="auto")
    ray.data.DataContext.get_current().enable_progress_bars = False
    summary = score_dataset(folder / "model.pt", folder / "parts", folder / "checked", engine="ray")
    print(f"{summary['rows']} rows in {summary['parts']} parts, {summary['flagged']} flagged on {summary['engine']}")
    print(f"estimated noise rate      {summary['noise_rate']:.3f}")

    out = open_dataset(folder / "checked").read().to_pandas()
    truth = names[y[800:]]
    print(f"labels right, given       {np.mean(out.label == truth):.3f}")
    print(f"labels right, kept rows   {np.mean((out.label == truth)[out.is_clean]):.3f}")

    # The single-machine run on all 1,600 rows at once gives the same columns.
    issues = labelclean.find_label_issues(out.label, model.predict_proba(out[columns]), classes=model.classes_)
    same = all((out[c].to_numpy() == issues[c].to_numpy()).all() for c in ("is_clean", "pseudo_label", "label_quality"))
    print(f"equal to the single-machine run: {same}")
    written = sorted(
        p.relative_to(folder / "checked").as_posix() for p in (folder / "checked").rglob("*") if p.is_file()
    )
    print("written:", ", ".join(written))
    ray.shutdown()
