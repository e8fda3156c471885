"""Quorum research wing: sweeps, suites, the promotion gate, executors, pre-screen and
strategy check. Built on the kernel (``sim``) and the metrics of ``reports``; the CLI
(``quorum``) only wires it."""
