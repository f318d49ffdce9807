"""Group level: gather the regional tables, test the contrasts, fit voxelwise models, report.

``run_group`` writes, under ``OUTPUT_DIR/group/`` (every table with a JSON sidecar):

- ``desc-all_regions.tsv``: every participant-level regional table with the
  ``participants.tsv``/``sessions.tsv`` columns (the input of the statistics);
- ``desc-missing_participants.tsv``: participants without participant-level outputs
  (``missing``) or with a crash file newer than their outputs (``failed``), never dropped
  silently;
- ``desc-roistats_stats.tsv``: one tidy row per contrast × modality × metric × ROI ×
  hemisphere × test (:mod:`pipeline.group.models`: effect sizes with CIs, FDR, power);
- ``voxelwise/contrast-<c>_meas-<metric>_stat-{z,effect}_statmap.nii.gz``, FDR- and
  cluster-thresholded z maps (``_stat-z_desc-{fdr,cluster}_statmap``) and their cluster
  tables (``_desc-{fdr,cluster}_clusters.tsv``): nilearn ``SecondLevelModel`` on the
  template-space maps for the two-group and paired-session contrasts named in
  ``group.voxelwise.designs``; ``desc-voxelwise_designs.tsv`` lists every design fitted or
  skipped (with the reason);
- ``group.html`` with its ``figures/`` (:mod:`pipeline.group.report`).

The package: :mod:`.gather` (verified regional tables, covariates, status), :mod:`.models`
(the ROI-level statistics), :mod:`.voxelwise` (second-level maps), :mod:`.report` (the
HTML report), :mod:`.tables` (TSV + JSON outputs), :mod:`.run` (the driver).
"""

from .gather import DamagedTable, gather_regional_tables, read_regional_table
from .run import run_group

__all__ = ["DamagedTable", "gather_regional_tables", "read_regional_table", "run_group"]
