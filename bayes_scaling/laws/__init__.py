"""Scaling-law families. Each module defines one ``Law``; ``get_law(name)`` looks one up."""

from bayes_scaling.errors import InputError
from bayes_scaling.laws.base import FLOPS_PER_PARAM_TOKEN, Law, Theta, tokens_per_parameter
from bayes_scaling.laws.chinchilla import EPOCH_2024, HOFFMANN_2022, Chinchilla
from bayes_scaling.laws.chinchilla_fixed_e import ChinchillaFixedE
from bayes_scaling.laws.data_constrained import DataConstrained
from bayes_scaling.laws.kaplan import KAPLAN_2020, Kaplan

LAWS: dict[str, type[Law]] = {
    "chinchilla": Chinchilla,
    "chinchilla_fixed_e": ChinchillaFixedE,
    "data_constrained": DataConstrained,
    "kaplan": Kaplan,
}


def get_law(name: str) -> Law:
    try:
        return LAWS[name]()
    except KeyError:
        raise InputError(f"unknown law {name!r}; known laws: {', '.join(sorted(LAWS))}") from None


__all__ = [
    "EPOCH_2024",
    "FLOPS_PER_PARAM_TOKEN",
    "HOFFMANN_2022",
    "KAPLAN_2020",
    "LAWS",
    "Chinchilla",
    "ChinchillaFixedE",
    "DataConstrained",
    "Kaplan",
    "Law",
    "Theta",
    "get_law",
    "tokens_per_parameter",
]
