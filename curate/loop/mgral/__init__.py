"""MGRAL in the detector loop: EMOC features, a look-up-table reward from real probe
fine-tunes, and an LSTM policy trained by REINFORCE that picks each round's batch.

* :mod:`curate.scoring` ``emoc`` and :mod:`curate.loop.mm3d.emoc`: the EMOC score column;
* :mod:`curate.loop.mgral.lut`: probe design, the least-squares table, its held-out error;
* :mod:`curate.loop.mgral.stage`: a round's probes, table and policy training (resumable);
* :mod:`curate.selectors.mgral`: the ``mgral`` selector that applies a stored policy.

Loop config: ``"strategy": "mgral", "strategy_params": {...}`` with the options of
:class:`curate.loop.mgral.options.MGRALOptions`.
"""

from __future__ import annotations

from curate.loop.mgral.lut import LookupTable, fit_table, probe_design, table_error
from curate.loop.mgral.options import MGRALOptions, mgral_options

__all__ = ["LookupTable", "fit_table", "probe_design", "table_error", "MGRALOptions", "mgral_options"]
