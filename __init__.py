"""conflictbrief: conflict-entity tagging and faithful, neutral briefs of conflict news.

    from conflictbrief import Pipeline
    p = Pipeline.load(device="auto")
    result = p.analyze(text)
"""
__version__ = "0.1.0"
__all__ = ["Pipeline", "__version__"]


def __getattr__(name):
    # Lazy, so that `import conflictbrief` (and the CLI's --help) does not import torch.
    if name == "Pipeline":
        from conflictbrief.inference.pipeline import Pipeline

        return Pipeline
    raise AttributeError(name)
