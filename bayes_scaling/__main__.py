# ``python -m bayes_scaling``: the package (JAX, NumPyro) is imported before this runs, so a Ctrl-C in
# those first seconds prints a traceback here; the installed ``bayes-scaling`` (``_bayes_scaling_entry``) does not.
from bayes_scaling.cli import entry_point

entry_point()
