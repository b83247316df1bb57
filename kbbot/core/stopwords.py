"""The English words a question carries no topic in: left out of searches, gap topics and follow-up topics."""

from __future__ import annotations

STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her
    here hers herself him himself his how i if in into is it its itself just let me more most my myself no
    nor not now of off on once only or other our ours ourselves out over own same she should so some such
    than that the their theirs them themselves then there these they this those through to too under until
    up very was we were what when where which while who whom why will with would you your yours yourself
    yourselves anyone anybody anything someone something get got getting need needs want wants please thanks
    thank hi hello hey tell know find use uses using used way ways also may might must shall us via vs
    ok okay today tomorrow yesterday allowed able possible happen happens happened exactly actually really
    basically currently still ever else whats im ive id accidentally mistakenly recently usually typically
    generally simply already maybe perhaps probably count counts mean means meant
    isn aren wasn weren don doesn didn hasn haven hadn shouldn wouldn couldn mustn needn
    """.split()  # noqa: SIM905 - a word list reads best as words
)
