"""Model Monitor, locally: data capture, baselines, drift and quality checks, and the labelling loop."""
