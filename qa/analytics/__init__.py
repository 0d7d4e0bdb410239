"""Agreement analytics over a compared batch: what the engine's pair tables mean for a QA lead.

Modules: :mod:`qa.analytics.consensus` (the consensus of three or more annotators and each annotator
scored against it).
"""
