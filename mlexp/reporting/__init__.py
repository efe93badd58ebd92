"""What a run and a sweep tell their user: the fold/epoch Reporter, progress bars, report.md, the console
summary, sweep leaderboards and the Hydra callback that keeps them current.

Only the light Reporter is imported here; the report, leaderboard and callback modules load
matplotlib, YAML or Hydra internals when used.
"""

from mlexp.reporting.reporter import Reporter, active_reporter, reporting_fold

__all__ = ["Reporter", "active_reporter", "reporting_fold"]
