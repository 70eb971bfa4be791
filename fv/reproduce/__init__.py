"""`fv reproduce`: the thesis' experiment end to end (issue 22). fv.reproduce.plan: the presets and the order
of the networks; fv.reproduce.run: the stages; fv.reproduce.records: what makes a stage reusable;
fv.reproduce.report / findings / thesis: the tables beside the thesis' and its findings checked."""
