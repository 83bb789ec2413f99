"""Test-time refinement (Kreiman & Krishnapriyan, "Understanding and Mitigating Distribution
Shifts For Machine Learning Force Fields"): a Lennard-Jones prior and its auxiliary head
(prior.py), test-time training on the prior (ttt.py), radius refinement by the graph
Laplacian spectrum (radius.py), and the one entry point that applies them (refine.py;
command-line options in options.py). Nothing here changes a checkpoint on disk."""
