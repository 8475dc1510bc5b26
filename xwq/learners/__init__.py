"""Learners: the QMIX-family TD learner and Weighted QMIX on top of it, with its weightings."""

from xwq.learners.qmix import NonFiniteLossError, QMIXLearner
from xwq.learners.weightings import WeightingContext, cw_weights, ow_weights
from xwq.learners.wqmix import WQMIXLearner

__all__ = ["NonFiniteLossError", "QMIXLearner", "WQMIXLearner", "WeightingContext", "cw_weights",
           "ow_weights"]
