"""Reports: the participant HTML report (:mod:`.participant`) and the methods boilerplate
(:mod:`.boilerplate`); templates in ``templates/``."""
