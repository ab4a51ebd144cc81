"""Many cases at once: batch segmentation and distributed evaluation on Dask.

- :mod:`.job`: one segmentation job's inputs read the way `samusa segment` reads them;
- :mod:`.cases`: the cases of a batch, from a folder, a glob or a manifest (CSV / JSON);
- :mod:`.fingerprint`: what a finished case records beside its output, so reruns skip it;
- :mod:`.worker`: the functions that run on a Dask worker (the model loads once per worker);
- :mod:`.cluster`: a LocalCluster or a running scheduler, tasks submitted and collected
  with a progress bar, worker events forwarded to the caller;
- :mod:`.segment`: ``samusa segment`` over many cases, with the summary table;
- :mod:`.evaluate`: ``samusa eval`` with its cases spread over the workers, results merged.

Dask retries a case whose worker died (the scheduler's ``allowed-failures``); a case that
fails with a user error is reported, never retried, and the other cases go on.
"""
