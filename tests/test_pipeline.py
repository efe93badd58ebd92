"""The assembled pipeline: branches per column role, list order of features, PCA on a subset."""

from pathlib import Path

from conftest import compose, run_inprocess

SIZE_COLUMNS = ["mean radius", "mean perimeter", "mean area", "worst radius", "worst perimeter", "worst area"]


def test_pca_on_a_subset_of_columns(tmp_path: Path):
    columns = ",".join(f'"{c}"' for c in SIZE_COLUMNS)
    overrides = ["features=[standardize,pca]", f"features.pca.columns=[{columns}]",
                 "features.pca.transformer.n_components=2"]
    result = run_inprocess(overrides, tmp_path)
    transformer = result.model.named_steps["columns"]
    branches = {name: (step, cols) for name, step, cols in transformer.transformers_}
    pca_branch, pca_columns = branches["pca"]
    assert pca_columns == SIZE_COLUMNS
    assert [type(s).__name__ for _, s in pca_branch.steps] == ["StandardScaler", "PCA"]
    assert pca_branch.named_steps["pca"].n_components_ == 2
    assert not set(SIZE_COLUMNS) & set(branches["numeric"][1])
    # 30 columns - 6 replaced by 2 components = 26 features reach the model.
    assert result.model.named_steps["model"].n_features_in_ == 26
    assert result.objective > 0.97


def test_features_apply_in_list_order_and_the_sampler_sits_before_the_model(tmp_path: Path):
    from mlexp.data import load_dataset
    from mlexp.models import build_estimator
    from mlexp.pipeline import build_pipeline

    cfg = compose(["data=penguins", "features=[log,standardize,binning]", "sampler=smote", "encoder=target"])
    dataset = load_dataset(cfg.data)
    pipeline = build_pipeline(cfg, dataset.roles, dataset.features, dataset.task,
                              build_estimator(cfg, dataset.task, n_jobs=1))
    assert [name for name, _ in pipeline.steps] == ["columns", "sampler", "model"]
    branches = {name: (step, cols) for name, step, cols in pipeline.named_steps["columns"].transformers}
    numeric, numeric_columns = branches["numeric"]
    assert [name for name, _ in numeric.steps] == ["log", "standardize", "binning"]
    assert "bill_length_mm" in numeric_columns and "island" in branches["categorical"][1]
    assert type(branches["categorical"][0]).__name__ == "TargetEncoder"
