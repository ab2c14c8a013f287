"""Meta prompt learning: multi-task prompts, task-conditioned generators, meta-learned initialisation."""
