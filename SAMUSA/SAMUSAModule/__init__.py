"""The SAMUSA Slicer module's parts that need no Qt widget of their own (parameters, Logic,
self-test) and the Widget's prompt tools; SAMUSA.py imports them (see its docstring)."""
