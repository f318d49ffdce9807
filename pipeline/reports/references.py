"""References cited by the workflows' descriptions (``[@key]`` in ``__desc__``) and by the
software paragraph of the methods boilerplate.

Each entry: ``short`` (author–year form used in the text) and ``full`` (the reference list
entry). A key used in a ``__desc__`` but missing here is listed as unresolved in the
boilerplate (and ``tests/test_reports.py`` checks that every key under ``workflows/`` is
here).
"""

REFERENCES = {
    "n4": {
        "short": "Tustison et al. 2010",
        "full": "Tustison NJ, Avants BB, Cook PA, Zheng Y, Egan A, Yushkevich PA, Gee JC. "
        "N4ITK: improved N3 bias correction. IEEE Trans Med Imaging. "
        "2010;29(6):1310-20. doi:10.1109/TMI.2010.2046908",
    },
    "ants": {
        "short": "Avants et al. 2008",
        "full": "Avants BB, Epstein CL, Grossman M, Gee JC. Symmetric diffeomorphic image "
        "registration with cross-correlation: evaluating automated labeling of "
        "elderly and neurodegenerative brain. Med Image Anal. 2008;12(1):26-41. "
        "doi:10.1016/j.media.2007.06.004",
    },
    "deepbet": {
        "short": "Fisch et al. 2024",
        "full": "Fisch L, Zumdick S, Barkhau C, et al. deepbet: Fast brain extraction of "
        "T1-weighted MRI using Convolutional Neural Networks. Comput Biol Med. "
        "2024;179:108845. doi:10.1016/j.compbiomed.2024.108845",
    },
    "atropos": {
        "short": "Avants et al. 2011",
        "full": "Avants BB, Tustison NJ, Wu J, Cook PA, Gee JC. An open source multivariate "
        "framework for n-tissue segmentation with evaluation on public data. "
        "Neuroinformatics. 2011;9(4):381-400. doi:10.1007/s12021-011-9109-y",
    },
    "harvardoxford": {
        "short": "Desikan et al. 2006; Makris et al. 2006",
        "full": "Desikan RS, Ségonne F, Fischl B, et al. An automated labeling system for "
        "subdividing the human cerebral cortex on MRI scans into gyral based regions of "
        "interest. NeuroImage. 2006;31(3):968-80. doi:10.1016/j.neuroimage.2006.01.021; "
        "Makris N, Goldstein JM, Kennedy D, et al. Decreased volume of left and total "
        "anterior insular lobule in schizophrenia. Schizophr Res. 2006;83(2-3):155-71. "
        "doi:10.1016/j.schres.2005.11.020 (Harvard-Oxford atlases, distributed with FSL)",
    },
    "templateflow": {
        "short": "Ciric et al. 2022",
        "full": "Ciric R, Thompson WH, Lorenz R, et al. TemplateFlow: FAIR-sharing of "
        "multi-scale, multi-species brain models. Nat Methods. 2022;19:1568-71. "
        "doi:10.1038/s41592-022-01681-2",
    },
    "nipype1": {
        "short": "Gorgolewski et al. 2011",
        "full": "Gorgolewski K, Burns CD, Madison C, Clark D, Halchenko YO, Waskom ML, "
        "Ghosh SS. Nipype: a flexible, lightweight and extensible neuroimaging data "
        "processing framework in Python. Front Neuroinform. 2011;5:13. "
        "doi:10.3389/fninf.2011.00013",
    },
    "nilearn": {
        "short": "Abraham et al. 2014",
        "full": "Abraham A, Pedregosa F, Eickenberg M, et al. Machine learning for "
        "neuroimaging with scikit-learn. Front Neuroinform. 2014;8:14. "
        "doi:10.3389/fninf.2014.00014",
    },
    "mni2009": {
        "short": "Fonov et al. 2009",
        "full": "Fonov VS, Evans AC, McKinstry RC, Almli CR, Collins DL. Unbiased nonlinear "
        "average age-appropriate brain templates from birth to adulthood. "
        "NeuroImage. 2009;47:S102. doi:10.1016/S1053-8119(09)70884-5",
    },
    "despot1": {
        "short": "Deoni et al. 2003",
        "full": "Deoni SCL, Rutt BK, Peters TM. Rapid combined T1 and T2 mapping using "
        "gradient recalled acquisition in the steady state. Magn Reson Med. "
        "2003;49(3):515-26. doi:10.1002/mrm.10407",
    },
    "patlak": {
        "short": "Patlak et al. 1983",
        "full": "Patlak CS, Blasberg RG, Fenstermacher JD. Graphical evaluation of "
        "blood-to-brain transfer constants from multiple-time uptake data. J Cereb "
        "Blood Flow Metab. 1983;3(1):1-7. doi:10.1038/jcbfm.1983.1",
    },
    "tofts": {
        "short": "Tofts et al. 1999",
        "full": "Tofts PS, Brix G, Buckley DL, et al. Estimating kinetic parameters from "
        "dynamic contrast-enhanced T1-weighted MRI of a diffusable tracer: "
        "standardized quantities and symbols. J Magn Reson Imaging. "
        "1999;10(3):223-32. doi:10.1002/(SICI)1522-2586(199909)10:3<223::AID-JMRI2>3.0.CO;2-S",
    },
    "parker": {
        "short": "Parker et al. 2006",
        "full": "Parker GJM, Roberts C, Macdonald A, et al. Experimentally-derived "
        "functional form for a population-averaged high-temporal-resolution arterial "
        "input function for dynamic contrast-enhanced MRI. Magn Reson Med. "
        "2006;56(5):993-1000. doi:10.1002/mrm.21066",
    },
    "petbids": {
        "short": "Norgaard et al. 2022",
        "full": "Norgaard M, Matheson GJ, Hansen HD, et al. PET-BIDS, an extension to the "
        "brain imaging data structure for positron emission tomography. Sci Data. "
        "2022;9:65. doi:10.1038/s41597-022-01164-1",
    },
    "bids": {
        "short": "Gorgolewski et al. 2016",
        "full": "Gorgolewski KJ, Auer T, Calhoun VD, et al. The brain imaging data "
        "structure, a format for organizing and describing outputs of neuroimaging "
        "experiments. Sci Data. 2016;3:160044. doi:10.1038/sdata.2016.44",
    },
    "boellaard2009": {
        "short": "Boellaard 2009",
        "full": "Boellaard R. Standards for PET image acquisition and quantitative data "
        "analysis. J Nucl Med. 2009;50 Suppl 1:11S-20S. doi:10.2967/jnumed.108.057182",
    },
    "lyoo2015": {
        "short": "Lyoo et al. 2015",
        "full": "Lyoo CH, Ikawa M, Liow JS, et al. Cerebellum can serve as a pseudo-reference "
        "region in Alzheimer disease to detect neuroinflammation measured with PET "
        "radioligand binding to translocator protein. J Nucl Med. 2015;56(5):701-6. "
        "doi:10.2967/jnumed.114.146027",
    },
    "chavhan2009": {
        "short": "Chavhan et al. 2009",
        "full": "Chavhan GB, Babyn PS, Thomas B, Shroff MM, Haacke EM. Principles, "
        "techniques, and applications of T2*-based MR imaging and its special "
        "applications. Radiographics. 2009;29(5):1433-49. doi:10.1148/rg.295095034",
    },
    "bh1995": {
        "short": "Benjamini and Hochberg 1995",
        "full": "Benjamini Y, Hochberg Y. Controlling the false discovery rate: a practical "
        "and powerful approach to multiple testing. J R Stat Soc Series B. "
        "1995;57(1):289-300. doi:10.1111/j.2517-6161.1995.tb02031.x",
    },
    "efron1993": {
        "short": "Efron and Tibshirani 1993",
        "full": "Efron B, Tibshirani RJ. An Introduction to the Bootstrap. New York: "
        "Chapman & Hall; 1993. doi:10.1201/9780429246593",
    },
    "hedges1981": {
        "short": "Hedges 1981",
        "full": "Hedges LV. Distribution theory for Glass's estimator of effect size and "
        "related estimators. J Educ Stat. 1981;6(2):107-28. doi:10.3102/10769986006002107",
    },
}
