"""The one training loop, its schedules, checkpoints and distributed setup."""
