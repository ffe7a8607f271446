"""Feature builders: early-session, cross-asset and regime features with lineage.

Public API (used by the experiment pipeline and the /features page)::

    from features import build_features, session_table, FEATURE_SETS, describe_features
    ft = build_features("ES", cutoff="10:15", sets=FEATURE_SETS, cross_assets=("VIX",))
    ft.frame, ft.sessions, ft.lineage, ft.notes, ft.data_hashes, ft.config

See :mod:`features.lineage` for every feature's definition and :mod:`features.build`
for the rules (rows, cache, errors).
"""

from features.build import FeatureTable, build_features, normalize_config
from features.cache import FEATURE_CODE_VERSION
from features.lineage import FEATURE_SETS, describe_features
from features.sessions_table import session_table

__all__ = ["FEATURE_CODE_VERSION", "FEATURE_SETS", "FeatureTable", "build_features", "describe_features",
           "normalize_config", "session_table"]
