"""conflictbrief: conflict-entity tagging and faithful, neutral briefs of conflict news.

    import conflictbrief
    result = conflictbrief.analyze(text)        # the default models, loaded on the first call

    from conflictbrief import Pipeline
    p = Pipeline.load(device="auto")            # other models or options
    result = p.analyze(text)
"""
__version__ = "0.1.0"
__all__ = ["Pipeline", "analyze", "__version__"]


def __getattr__(name):
    # Lazy, so that `import conflictbrief` (and the CLI's --help) does not import torch.
    if name in ("Pipeline", "analyze"):
        from conflictbrief.inference import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
