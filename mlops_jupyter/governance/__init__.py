"""Governance of model versions: the model card (:mod:`.card`: what a version is, what it is for,
its data and code, evaluations, explanations, monitoring and aliases) and the model audit
(:mod:`.audit`: what its file would run when loaded, whether its bytes are the registered ones, its
job's pinned dependencies and their licences). Both read the store; neither computes anything again.
"""
