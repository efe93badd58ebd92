"""mlexp's Optuna sweeper for Hydra (`hydra/sweeper: mlexp`): a thin plugin; the logic is in mlexp.tuning."""
