"""The export error: a model cannot be exported as asked; the message says why and what is supported."""


class ExportError(ValueError):
    pass
