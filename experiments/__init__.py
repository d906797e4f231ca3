"""The experiments layer, built on the library (backbones, engine, classification, detection).

The paper's experiments and their reports: the depth study, the demo pipeline, the model table,
the Table 7/8 comparison, synthetic data, plots, report writers, the job launcher, and `paper`, the
one module holding every number of the paper. It reads configs/ from the checkout (`paths`); the
library never imports this package; benchmarks and dev-ops live in bench/, above it.
"""
