"""The built-in lobar atlas on the offline template."""

import nibabel as nb
import numpy as np

from pipeline.atlas import lobar_labels, lobar_lut
from pipeline.templates import get_template_file


def test_lobar_atlas_covers_tissue_and_splits_hemispheres(tf_home):
    gm = nb.load(get_template_file("MNI152NLin2009aSym", 2, label="GM", suffix="probseg"))
    wm = nb.load(get_template_file("MNI152NLin2009aSym", 2, label="WM", suffix="probseg"))
    tissue = gm.get_fdata() + wm.get_fdata()
    labels = lobar_labels(tissue, gm.affine)
    lut = lobar_lut()
    assert np.all(labels[tissue >= 0.5] > 0)  # every tissue voxel labelled
    assert np.all(labels[tissue < 0.5] == 0)
    x = (gm.affine @ np.c_[np.argwhere(labels > 0), np.ones((labels > 0).sum())].T)[0]
    hemi = lut.set_index("index").loc[labels[labels > 0], "hemisphere"].to_numpy()
    assert np.all(x[hemi == "left"] < 0) and np.all(x[hemi == "right"] >= 0)
    vols = {(r.name, r.hemisphere): (labels == r.index).sum() * 8 / 1000 for r in lut.itertuples()}
    assert all(v >= 2.0 for v in vols.values())  # every ROI >= 2 cm3
    # symmetric template: left and right volumes within 5 %
    for lobe in ("frontal", "parietal", "temporal", "occipital", "thalamus", "cerebellum"):
        assert abs(vols[(lobe, "left")] / vols[(lobe, "right")] - 1) < 0.05
