"""Machine-learning layer: labels, models, walk-forward validation, backtests, statistics."""
