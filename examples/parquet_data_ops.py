"""Data-ops: a parquet table with an embedding column, a text column and string labels, cleaned from Python.

The same run as `labelclean filter animals.parquet`: every input column is kept and
is_clean, pseudo_label and label_quality are added. Columns are picked by type: the list
column is an embedding, the low-cardinality text column is one-hot encoded, the id column
(all values distinct) is skipped.
"""

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification

import labelclean
from labelclean.api import clean_file

X, y = make_classification(n_samples=1500, n_features=16, n_informative=8, n_classes=3, class_sep=2.0, random_state=0)
names = np.array(["bird", "cat", "dog"])
true_label = names[y]
df = pd.DataFrame(
    {
        "id": np.arange(len(y)),
        "embedding": list(X.astype(np.float32)),  # one list of 16 floats per row
        "source": np.random.default_rng(0).choice(["camera_a", "camera_b"], len(y)),
        "label": labelclean.make_noisy_labels(true_label, 0.2, random_state=0),  # 20 % wrong
    }
)

with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "animals.parquet"
    df.to_parquet(path)

    # DataFrame (or pyarrow Table, or path) in, DataFrame out.
    out = labelclean.filter_labels(path, label="label", random_state=0)
    print("columns:", ", ".join(out.columns))
    print(f"rows flagged              {int((~out.is_clean).sum())} of {len(out)}")
    print(f"labels right, given       {np.mean(out.label == true_label):.3f}")
    print(f"labels right, pseudo      {np.mean(out.pseudo_label == true_label):.3f}")
    print(
        out.sort_values("label_quality")[["id", "label", "pseudo_label", "label_quality"]]
        .head(5)
        .to_string(index=False)
    )

    # Parquet to parquet, streaming, as the command line does; returns the run's summary.
    summary = clean_file("filter", path, Path(folder) / "animals.clean.parquet", random_state=0)
    print("features used:", summary["features"], "| skipped:", summary["skipped_columns"])
    print(f"wrote {summary['rows_written']} rows with {len(pd.read_parquet(summary['output']).columns)} columns")
