from bayes_scaling.cli import entry_point

entry_point()
