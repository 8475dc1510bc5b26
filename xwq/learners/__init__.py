"""Learners: the QMIX-family TD learner and Weighted QMIX on top of it."""

from xwq.learners.qmix import NonFiniteLossError, QMIXLearner
from xwq.learners.wqmix import WQMIXLearner, cw_weights, ow_weights

__all__ = ["NonFiniteLossError", "QMIXLearner", "WQMIXLearner", "cw_weights", "ow_weights"]
