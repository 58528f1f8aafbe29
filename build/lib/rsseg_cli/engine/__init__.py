"""The shared training loop and what it needs: distribution, sampling, precision, schedules, EMA, checkpoints."""
