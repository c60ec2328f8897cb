"""Plumbing shared by training, evaluation and analysis: schedules, files, devices, memory.

Every other package may import from here; nothing here imports the rest of neurossl, so
evaluation and analysis never depend on the training loop.
"""
