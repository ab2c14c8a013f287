"""`promptlearning tune`: Optuna searches a method's declared space for the best dev accuracy.

- :mod:`.space`: a method's search space (``methods.search_space``) as Optuna suggestions, and
  where each value goes in the experiment's options;
- :mod:`.pruning`: the trainer callback that reports the dev curve and prunes a losing trial;
- :mod:`.study`: the study (an Optuna RDB, SQLite by default, so a killed study resumes) and
  its objective (mean dev accuracy over the tasks and seeds asked for), trials run in this process;
- :mod:`.on_ray`: the same trials as Ray tasks (``--executor ray``), the driver alone writing the study;
- :mod:`.best_config`: the best trial as a YAML file that ``promptlearning train --config`` runs.
"""
