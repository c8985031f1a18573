"""Published MLPerf results as the runs of import systems: one log as a run (``run``), a
benchmark's runs in one job (``batch``), a whole round as a config overlay (``overlay``, from
the round's ``tree``), and what a result folder holds besides its logs (``folder``). The
command line is ``python -m scripts import`` (``cli``)."""
