"""Drivers of one run: a single task, several tasks, transfer, continual learning, adapting to
an unseen task, PEFT side by side. Each reads configs, builds a model, calls a trainer
strategy and writes its outputs; the CLI and the bench call these and nothing lower."""
