"""Reports from run folders, each read through ``experiments.run_folder``: Table 1 (``table``, ``propetl-table``),
figures of the sweeps (``plots``, ``propetl-plot``) and the multi-task comparison (``multitask_table``)."""
