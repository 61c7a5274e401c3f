"""Analysis: tag AI spend and classify network charges.

Polars classifies the distinct charge keys of the store (a few thousand even for tens of
millions of line items) with the ordered rules in `taxonomy/`; DuckDB views join the result back
to the rows. Entry points: `run_analysis(con, config)`, `ensure_analysis(con, config)`,
`load_analysis_config(path)`, `classify_keys(keys, taxonomy)`.
"""

from .classify import classify_keys
from .config import AnalysisConfig, load_analysis_config
from .run import AnalysisRun, ensure_analysis, is_fresh, latest_run, run_analysis
from .taxonomy import Taxonomy, load_taxonomy

__all__ = [
    "AnalysisConfig",
    "AnalysisRun",
    "Taxonomy",
    "classify_keys",
    "ensure_analysis",
    "is_fresh",
    "latest_run",
    "load_analysis_config",
    "load_taxonomy",
    "run_analysis",
]
