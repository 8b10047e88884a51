"""The run report: one self-contained HTML page (figures embedded) summarising a results folder.

``collect`` reads the stage folders (any may be absent), ``sections`` turns what was found into
HTML sections and key numbers, ``figures`` draws the plots and ``page`` assembles the document.
"""
